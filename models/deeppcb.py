"""DeepPCB pairs for training the defect network: group split, packing, augmentation, mixing.

Usage::

    python -m models.deeppcb split --data ../shared/data/deeppcb/PCBData     # models/splits/*.txt
    python -m models.deeppcb pack --data ../shared/data/deeppcb/PCBData --out data/deeppcb-pack

- The validation split is carved out of the official trainval list **by PCB group** (whole boards
  unseen in training): :data:`VAL_GROUPS`. Both lists keep the ``trainval.txt`` format, so
  ``aoi eval --split`` reads them.
- ``pack`` writes the training pairs as bilevel PNG (DeepPCB images were binarised before JPEG
  compression; the JPEG is re-applied as augmentation) and copies the validation pairs as they
  are, so that the GPU machine can receive the data within its transfer limit.
- :class:`DeepPcbPairs` yields augmented :class:`models.dataset.PairSample` crops: right-angle
  rotations/flips of pair and boxes, JPEG re-compression, the station's registration round trip
  (warp to a shifted/rotated pose and back, with a small residual), brightness and noise.
- :class:`MixedPairs` interleaves DeepPCB crops with synthetic pairs, batch by batch.

Every item depends only on ``(seed, index)``. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aoi.sources.replay import read_annotation
from models.dataset import PairSample, SyntheticPairs, augment
from models.targets import close_pairs

#: PCB groups held out for validation: 150 of the 1,000 trainval pairs, 807 defects, every
#: class present at least 83 times; the five larger groups stay for training.
VAL_GROUPS: tuple[str, ...] = ("group50600", "group77000")
#: Default location of the split lists, relative to the repository root.
SPLIT_DIR = Path("models/splits")
#: Pixels around a training window that its warps may pull in (shift + rotation + blur).
WARP_MARGIN = 16


@dataclass(frozen=True)
class SplitLine:
    """One ``trainval.txt`` line: the pair's image stem path and its annotation, both relative."""

    image: str
    annotation: str

    @property
    def group(self) -> str:
        """The PCB group folder (``groupNNNNN``) the pair belongs to."""
        return self.image.split("/", 1)[0]

    def text(self) -> str:
        return f"{self.image} {self.annotation}"


def read_list(path: Path) -> list[SplitLine]:
    """Lines of a ``trainval.txt``-format list; a malformed line names the file and line."""
    out = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or "/" not in parts[0]:
            msg = f"{path}:{no}: expected 'groupG/G/ID.jpg groupG/G_not/ID.txt', found {line!r}"
            raise ValueError(msg)
        out.append(SplitLine(parts[0], parts[1]))
    return out


def split_by_group(
    lines: Sequence[SplitLine], val_groups: Sequence[str] = VAL_GROUPS
) -> tuple[list[SplitLine], list[SplitLine]]:
    """(train, val): every pair of a group in ``val_groups`` goes to val, the rest to train."""
    present = {line.group for line in lines}
    missing = sorted(set(val_groups) - present)
    if missing:
        msg = f"validation groups {missing} are not in the list (it has {sorted(present)})"
        raise ValueError(msg)
    val = [line for line in lines if line.group in val_groups]
    train = [line for line in lines if line.group not in val_groups]
    return train, val


def write_list(lines: Sequence[SplitLine], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line.text() + "\n" for line in lines), encoding="utf-8")


def pair_paths(data_dir: Path, line: SplitLine) -> tuple[Path, Path, Path]:
    """(test, template, annotation) files of a pair; a packed ``.png`` stands in for ``.jpg``."""
    stem = (data_dir / line.image).with_suffix("")
    found = []
    for role in ("test", "temp"):
        candidates = [Path(f"{stem}_{role}{ext}") for ext in (Path(line.image).suffix, ".png")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            msg = f"{data_dir}: no image for {line.image} ({role}); looked for {candidates}"
            raise FileNotFoundError(msg)
        found.append(path)
    return found[0], found[1], data_dir / line.annotation


def load_pair(data_dir: Path, line: SplitLine) -> PairSample:
    """One pair as stored (uint8 640x640 each) with its boxes (inclusive pixel corners)."""
    test_path, temp_path, ann_path = pair_paths(data_dir, line)
    test = cv2.imread(str(test_path), cv2.IMREAD_GRAYSCALE)
    template = cv2.imread(str(temp_path), cv2.IMREAD_GRAYSCALE)
    if test is None or template is None:
        msg = f"{test_path} or {temp_path} is not a readable image"
        raise ValueError(msg)
    truth = read_annotation(ann_path)
    return PairSample(
        test,
        template,
        truth.bbox_xyxy_px.astype(np.float32).reshape(-1, 4),
        truth.class_ids.astype(np.int64),
    )


def pack(data_dir: Path, train: Sequence[SplitLine], val: Sequence[SplitLine], out: Path) -> int:
    """Write ``train`` pairs as bilevel PNG and copy ``val`` pairs unchanged; return bytes."""
    for line in train:
        for src in pair_paths(data_dir, line)[:2]:
            dst = out / src.relative_to(data_dir).with_suffix(".png")
            dst.parent.mkdir(parents=True, exist_ok=True)
            image = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
            binary = np.where(image >= 128, 255, 0).astype(np.uint8)
            cv2.imwrite(str(dst), binary, [cv2.IMWRITE_PNG_BILEVEL, 1])
    for line in val:
        for src in pair_paths(data_dir, line)[:2]:
            dst = out / src.relative_to(data_dir)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    for line in [*train, *val]:
        dst = out / line.annotation
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / line.annotation, dst)
    write_list([*train, *val], out / "trainval.txt")
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


@dataclass(frozen=True)
class DeepPcbConfig:
    """How DeepPCB training crops are drawn (the TOML config's ``[deeppcb]`` table)."""

    crop_px: int = 320
    #: Share of items whose test image is the template itself: clean boards, no boxes.
    clean_fraction: float = 0.1
    #: Share of crops placed to hold a randomly chosen defect box whole.
    defect_centred_prob: float = 0.5
    #: A clipped box that keeps less than this share of its area becomes "ignore" in the target.
    min_visible: float = 0.5
    jpeg_prob: float = 0.9
    jpeg_quality: tuple[int, int] = (65, 90)
    #: The station's registration round trip: warp the test to a pose up to this far away
    #: (border replicated, as a camera frame ends), then back with a small residual error.
    #: Share of pairs whose test image is moved off its template by up to ``misalign_px``
    #: (the rest by the registration residual only); boxes move with the test image.
    misalign_prob: float = 0.5
    misalign_px: float = 3.5
    pose_prob: float = 0.5
    pose_shift_px: float = 3.0
    pose_rotation_deg: float = 1.0
    residual_shift_px: float = 0.5
    residual_rotation_deg: float = 0.03
    brightness_prob: float = 0.3
    gain: tuple[float, float] = (0.8, 1.05)
    offset: tuple[float, float] = (-10.0, 25.0)
    noise_prob: float = 0.4
    noise_sigma: tuple[float, float] = (1.0, 6.0)
    #: Share of items drawn from the pairs that hold two same-class defects at most
    #: ``neighbour_gap_px`` apart, windowed on such a neighbour pair (they are rare: ~2 % of
    #: pairs, and the network must learn to keep them apart).
    neighbour_prob: float = 0.0
    neighbour_gap_px: float = 12.0

    @classmethod
    def from_mapping(cls, values: dict[str, object]) -> DeepPcbConfig:
        """Build a config from a TOML table, rejecting unknown keys by name."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            msg = f"[deeppcb] has unknown keys {unknown}; expected some of {sorted(known)}"
            raise ValueError(msg)
        cfg = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})  # type: ignore[arg-type]
        if cfg.crop_px % 16 or not 16 <= cfg.crop_px <= 640:
            msg = f"[deeppcb] crop_px must be a multiple of 16 in 16..640, got {cfg.crop_px}"
            raise ValueError(msg)
        return cfg


def dihedral(sample: PairSample, rng: np.random.Generator) -> PairSample:
    """``models.dataset.augment`` for boxes with inclusive corners (exact to the pixel)."""
    one = np.array([0, 0, 1, 1], np.float32)
    exclusive = PairSample(
        sample.test, sample.template, sample.boxes_xyxy_px + one, sample.class_ids
    )
    out = augment(exclusive, rng)
    return PairSample(out.test, out.template, out.boxes_xyxy_px - one, out.class_ids)


def _rigid(shape: tuple[int, int], dx: float, dy: float, angle_deg: float) -> np.ndarray:
    h, w = shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_deg, 1.0)
    matrix[:, 2] += (dx, dy)
    return matrix


def misalignment(rng: np.random.Generator, cfg: DeepPcbConfig) -> tuple[float, float, float]:
    """How far the test image ends up off its template: ``(dx, dy, degrees)``.

    DeepPCB's own pairs are off by up to about 3.5 px (phase correlation: 20 % of them by more
    than 1 px, 11 % by more than 2 px); the rest get the sub-pixel residual of a registration.
    """
    if rng.random() < cfg.misalign_prob:
        radius = cfg.misalign_px * math.sqrt(rng.random())  # uniform over the disc
        direction = rng.uniform(0.0, 2.0 * math.pi)
        dx, dy = radius * math.cos(direction), radius * math.sin(direction)
    else:
        dx, dy = (float(v) for v in rng.uniform(-cfg.residual_shift_px, cfg.residual_shift_px, 2))
    angle = float(rng.uniform(-cfg.residual_rotation_deg, cfg.residual_rotation_deg))
    return dx, dy, angle


def pose_round_trip(
    image: np.ndarray,
    rng: np.random.Generator,
    cfg: DeepPcbConfig,
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """The board seen at another pose and registered back as the station does, ending
    ``offset`` = ``(dx, dy, degrees)`` away from where it started.

    The forward warp replicates the border (what lies outside a camera frame is unknown); the
    way back uses the station's resampling (bilinear, ``WARP_INVERSE_MAP``, replicated border)
    with an estimate that is off by the offset.
    """
    shape = image.shape
    dx, dy = rng.uniform(-cfg.pose_shift_px, cfg.pose_shift_px, size=2)
    angle = float(rng.uniform(-cfg.pose_rotation_deg, cfg.pose_rotation_deg))
    forward = _rigid(shape, float(dx), float(dy), angle)
    moved = cv2.warpAffine(
        image, forward, shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    # Inverse mapping with an estimate E = forward - offset moves the content by +offset.
    estimate = _rigid(shape, float(dx - offset[0]), float(dy - offset[1]), angle - offset[2])
    return cv2.warpAffine(
        moved,
        estimate,
        shape[::-1],
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def shifted(image: np.ndarray, offset: tuple[float, float, float]) -> np.ndarray:
    """``image`` with its content moved by ``offset`` = ``(dx, dy, degrees)``."""
    matrix = _rigid(image.shape, offset[0], offset[1], offset[2])
    return cv2.warpAffine(
        image, matrix, image.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG: the ringing of DeepPCB's own files (about quality 75)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _photometric(image: np.ndarray, rng: np.random.Generator, cfg: DeepPcbConfig) -> np.ndarray:
    out = image.astype(np.float32)
    if rng.random() < cfg.brightness_prob:
        out = out * rng.uniform(*cfg.gain) + rng.uniform(*cfg.offset)
    if rng.random() < cfg.noise_prob:
        out = out + rng.normal(0.0, rng.uniform(*cfg.noise_sigma), size=out.shape)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def crop(
    sample: PairSample, y: int, x: int, size: int, min_visible: float
) -> tuple[PairSample, np.ndarray]:
    """A ``size`` square window at ``(y, x)``: (sample with clipped boxes, ignore boxes).

    Boxes keep inclusive corners. A box that keeps less than ``min_visible`` of its area is
    moved to the ignore boxes: its defect may lie outside the window.
    """
    window = np.s_[y : y + size, x : x + size]
    boxes = sample.boxes_xyxy_px.astype(np.float32) - np.array([x, y, x, y], np.float32)
    clipped = np.clip(boxes, 0, size - 1)
    inside = (boxes[:, 2] >= 0) & (boxes[:, 3] >= 0) & (boxes[:, 0] < size) & (boxes[:, 1] < size)
    area = np.prod(boxes[:, 2:] - boxes[:, :2] + 1, axis=1)
    kept = np.prod(clipped[:, 2:] - clipped[:, :2] + 1, axis=1)
    good = inside & (kept >= min_visible * area)
    out = PairSample(
        np.ascontiguousarray(sample.test[window]),
        np.ascontiguousarray(sample.template[window]),
        clipped[good].reshape(-1, 4),
        sample.class_ids[good],
    )
    return out, clipped[inside & ~good].reshape(-1, 4)


class DeepPcbPairs(Sequence[tuple[PairSample, np.ndarray]]):
    """Augmented DeepPCB crops, ``length`` of them, item ``i`` drawn from ``(seed, i)``.

    Items are (sample, ignore boxes). The pairs are read once and kept in memory (850 pairs
    take 700 MB as uint8), so DataLoader workers share them after a fork.
    """

    def __init__(
        self,
        data_dir: Path,
        lines: Sequence[SplitLine],
        config: DeepPcbConfig,
        length: int,
        seed: int = 0,
    ) -> None:
        if not lines:
            msg = f"{data_dir}: the training list names no pairs"
            raise ValueError(msg)
        self.config = config
        self.length = length
        self.seed = seed
        self.pairs = [load_pair(data_dir, line) for line in lines]
        #: Pairs holding same-class neighbours (see ``DeepPcbConfig.neighbour_prob``).
        self.with_neighbours = [
            k
            for k, p in enumerate(self.pairs)
            if next(close_pairs(p.boxes_xyxy_px, p.class_ids, config.neighbour_gap_px), None)
        ]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[PairSample, np.ndarray]:  # type: ignore[override]
        if not 0 <= index < self.length:
            raise IndexError(index)
        cfg = self.config
        rng = np.random.default_rng([self.seed, index, 11])
        sample = self.pairs[int(rng.integers(len(self.pairs)))]
        if cfg.neighbour_prob > 0 and self.with_neighbours and rng.random() < cfg.neighbour_prob:
            pick = self.with_neighbours[int(rng.integers(len(self.with_neighbours)))]
            sample = dihedral(self.pairs[pick], rng)
            return self.finish(sample, rng, neighbours=True)
        if rng.random() < cfg.clean_fraction:
            empty = np.zeros((0, 4), np.float32)
            sample = PairSample(sample.template, sample.template, empty, np.zeros(0, np.int64))
        sample = dihedral(sample, rng)
        return self.finish(sample, rng)

    def finish(
        self, sample: PairSample, rng: np.random.Generator, neighbours: bool = False
    ) -> tuple[PairSample, np.ndarray]:
        """Pick the window, then JPEG, misalignment, pose round trip and photometry on it.

        The window holds one whole defect box with ``defect_centred_prob``, or, with
        ``neighbours``, both boxes of one same-class neighbour pair.

        The work is done on the window plus :data:`WARP_MARGIN` pixels (aligned to JPEG's 8x8
        grid) so what the warps pull in from outside is real board, except at the frame's own
        border, which is replicated as in the station. Boxes follow the test image.
        """
        cfg = self.config
        h, w = sample.test.shape
        size = min(cfg.crop_px, h, w)
        y = int(rng.integers(0, h - size + 1))
        x = int(rng.integers(0, w - size + 1))
        boxes = sample.boxes_xyxy_px.astype(np.float32)
        near = (
            list(close_pairs(boxes, sample.class_ids, cfg.neighbour_gap_px)) if neighbours else []
        )
        focus = None
        if near:
            i, j = near[int(rng.integers(len(near)))]
            focus = np.concatenate(
                [np.minimum(boxes[i, :2], boxes[j, :2]), np.maximum(boxes[i, 2:], boxes[j, 2:])]
            )
        elif len(boxes) and rng.random() < cfg.defect_centred_prob:
            focus = boxes[int(rng.integers(len(boxes)))]
        if focus is not None:
            # A window that holds the focus box whole, anywhere in the window.
            x0, y0, x1, y1 = (int(v) for v in focus)
            ys = (max(0, y1 - size + 1), min(y0, h - size))
            xs = (max(0, x1 - size + 1), min(x0, w - size))
            if ys[0] <= ys[1] and xs[0] <= xs[1]:
                y = int(rng.integers(ys[0], ys[1] + 1))
                x = int(rng.integers(xs[0], xs[1] + 1))
        wy0, wx0 = max(0, (y - WARP_MARGIN) // 8 * 8), max(0, (x - WARP_MARGIN) // 8 * 8)
        wy1, wx1 = min(h, y + size + WARP_MARGIN), min(w, x + size + WARP_MARGIN)
        test = sample.test[wy0:wy1, wx0:wx1]
        template = sample.template[wy0:wy1, wx0:wx1]
        if rng.random() < cfg.jpeg_prob:
            quality = cfg.jpeg_quality
            test = jpeg(test, int(rng.integers(quality[0], quality[1] + 1)))
            template = jpeg(template, int(rng.integers(quality[0], quality[1] + 1)))
        offset = misalignment(rng, cfg)
        if rng.random() < cfg.pose_prob:
            test = pose_round_trip(test, rng, cfg, offset)
        else:
            test = shifted(test, offset)
        test = _photometric(test, rng, cfg)
        template = _photometric(template, rng, cfg)
        moved = boxes + np.array([offset[0] - wx0, offset[1] - wy0] * 2, np.float32)
        window = PairSample(test, template, moved.reshape(-1, 4), sample.class_ids)
        return crop(window, y - wy0, x - wx0, size, cfg.min_visible)


class MixedPairs(Sequence[tuple[PairSample, np.ndarray]]):
    """DeepPCB crops and synthetic pairs interleaved: each batch of ``batch`` items starts with
    ``synthetic_per_batch`` synthetic ones (consecutive synthetic indices, so their boards are
    shared as :class:`SyntheticPairs` intends), then DeepPCB crops."""

    def __init__(
        self,
        deeppcb: DeepPcbPairs,
        synthetic: SyntheticPairs,
        batch: int,
        synthetic_per_batch: int,
        seed: int = 0,
    ) -> None:
        if not 0 <= synthetic_per_batch <= batch:
            msg = f"synthetic_per_batch must be in 0..{batch}, got {synthetic_per_batch}"
            raise ValueError(msg)
        self.deeppcb = deeppcb
        self.synthetic = synthetic
        self.batch = batch
        self.synthetic_per_batch = synthetic_per_batch
        self.seed = seed
        self.length = len(deeppcb) // max(batch - synthetic_per_batch, 1) * batch
        if synthetic_per_batch == batch:
            self.length = len(synthetic)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[PairSample, np.ndarray]:  # type: ignore[override]
        if not 0 <= index < self.length:
            raise IndexError(index)
        step, slot = divmod(index, self.batch)
        k = self.synthetic_per_batch
        if slot < k:
            rng = np.random.default_rng([self.seed, index, 12])
            sample = dihedral(self.synthetic[step * k + slot], rng)
            return sample, np.zeros((0, 4), np.float32)
        return self.deeppcb[step * (self.batch - k) + slot - k]


def main(argv: list[str] | None = None) -> int:
    """Command line: write the group split lists, or pack the data for the GPU machine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("split", "pack"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, required=True, help="the PCBData folder")
        p.add_argument("--list", type=Path, help="source list (default DATA/trainval.txt)")
        p.add_argument("--val-groups", nargs="+", default=list(VAL_GROUPS))
    sub.choices["split"].add_argument("--out", type=Path, default=SPLIT_DIR)
    sub.choices["pack"].add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    lines = read_list(args.list or args.data / "trainval.txt")
    train, val = split_by_group(lines, args.val_groups)
    if args.command == "split":
        write_list(train, args.out / "deeppcb-train.txt")
        write_list(val, args.out / "deeppcb-val.txt")
        print(f"{args.out}: {len(train)} train pairs, {len(val)} val pairs ({args.val_groups})")
    else:
        size = pack(args.data, train, val, args.out)
        print(
            f"{args.out}: {len(train)} bilevel PNG + {len(val)} JPEG pairs, {size / 2**20:.1f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
