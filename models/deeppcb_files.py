"""DeepPCB on disk: the group split lists, a pair's files, and packing for the GPU machine.

- The validation split is carved out of the official trainval list **by PCB group** (whole boards
  unseen in training): :data:`VAL_GROUPS`. Both lists keep the ``trainval.txt`` format, so
  ``aoi eval --split`` reads them.
- ``pack`` writes the training pairs as bilevel PNG (DeepPCB images were binarised before JPEG
  compression; the JPEG is re-applied as augmentation) and copies the validation pairs as they
  are, so that the GPU machine can receive the data within its transfer limit.

The command line is ``python -m models.deeppcb``.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aoi.sources.replay import read_annotation
from models.dataset import PairSample

#: PCB groups held out for validation: 150 of the 1,000 trainval pairs, 807 defects, every
#: class present at least 83 times; the five larger groups stay for training.
VAL_GROUPS: tuple[str, ...] = ("group50600", "group77000")
#: Default location of the split lists, relative to the repository root.
SPLIT_DIR = Path("models/splits")


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
