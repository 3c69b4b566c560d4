"""DeepPCB pairs for training the defect network: group split, packing, augmentation, mixing.

Usage::

    python -m models.deeppcb split --data ../shared/data/deeppcb/PCBData     # models/splits/*.txt
    python -m models.deeppcb pack --data ../shared/data/deeppcb/PCBData --out data/deeppcb-pack

- :mod:`models.deeppcb_files`: the group split lists (validation = whole PCB groups,
  :data:`VAL_GROUPS`), a pair's files, and packing for the GPU machine.
- :mod:`models.deeppcb_augment`: :class:`DeepPcbConfig` and the augmentation steps.
- Here: :class:`DeepPcbPairs` yields augmented :class:`models.dataset.PairSample` crops, and
  :class:`MixedPairs` interleaves them with synthetic pairs, batch by batch; the command line.
  The names of the two modules above are re-exported.

Every item depends only on ``(seed, index)``. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.dataset import PairSample, SyntheticPairs
from models.deeppcb_augment import (
    DeepPcbConfig,
    crop,
    dihedral,
    jpeg,
    misalignment,
    photometric,
    pose_round_trip,
    rescaled,
    shifted,
)
from models.deeppcb_files import (
    SPLIT_DIR,
    VAL_GROUPS,
    SplitLine,
    load_pair,
    pack,
    pair_paths,
    read_list,
    split_by_group,
    write_list,
)
from models.targets import close_pairs

__all__ = [
    "SPLIT_DIR",
    "VAL_GROUPS",
    "WARP_MARGIN",
    "DeepPcbConfig",
    "DeepPcbPairs",
    "MixedPairs",
    "SplitLine",
    "crop",
    "dihedral",
    "jpeg",
    "load_pair",
    "main",
    "misalignment",
    "pack",
    "pair_paths",
    "pose_round_trip",
    "read_list",
    "rescaled",
    "shifted",
    "split_by_group",
    "write_list",
]

#: Pixels around a training window that its warps may pull in (shift + rotation + blur).
WARP_MARGIN = 16


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
        #: The PCB group (``groupNNNNN``) of each pair, in ``lines`` order.
        self.groups = [line.group for line in lines]
        #: Pairs holding same-class neighbours (see ``DeepPcbConfig.neighbour_prob``).
        self.with_neighbours = [
            k
            for k, p in enumerate(self.pairs)
            if next(close_pairs(p.boxes_xyxy_px, p.class_ids, config.neighbour_gap_px), None)
        ]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[PairSample, np.ndarray]:  # type: ignore[override]
        sample, ignore, _ = self.draw(index)
        return sample, ignore

    def draw(self, index: int) -> tuple[PairSample, np.ndarray, int]:
        """Item ``index`` as (sample, ignore boxes, index of the source pair in ``lines``), so
        that cross-validation can tell which PCB group a crop came from."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        cfg = self.config
        rng = np.random.default_rng([self.seed, index, 11])
        source = int(rng.integers(len(self.pairs)))
        sample = self.pairs[source]
        if cfg.neighbour_prob > 0 and self.with_neighbours and rng.random() < cfg.neighbour_prob:
            source = self.with_neighbours[int(rng.integers(len(self.with_neighbours)))]
            sample = rescaled(dihedral(self.pairs[source], rng), rng, cfg)
            return (*self.finish(sample, rng, neighbours=True), source)
        if rng.random() < cfg.clean_fraction:
            empty = np.zeros((0, 4), np.float32)
            sample = PairSample(sample.template, sample.template, empty, np.zeros(0, np.int64))
        sample = rescaled(dihedral(sample, rng), rng, cfg)
        return (*self.finish(sample, rng), source)

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
        test = photometric(test, rng, cfg)
        template = photometric(template, rng, cfg)
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

    def draw(self, index: int) -> tuple[PairSample, np.ndarray, int]:
        """Item ``index`` plus its DeepPCB source pair (``DeepPcbPairs.draw``); -1 = synthetic."""
        step, slot = divmod(index, self.batch)
        k = self.synthetic_per_batch
        if 0 <= index < self.length and slot >= k:
            return self.deeppcb.draw(step * (self.batch - k) + slot - k)
        return (*self[index], -1)


def main(argv: list[str] | None = None) -> int:
    """Command line: write the group split lists, or pack the data for the GPU machine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("split", "pack"):
        p = sub.add_parser(name)
        p.add_argument("--data", type=Path, required=True, help="the PCBData folder")
        p.add_argument("--list", type=Path, help="source list (default DATA/trainval.txt)")
        p.add_argument(
            "--val-groups", nargs="*", default=list(VAL_GROUPS), help="none: pack all as train"
        )
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
