"""A tiny PCBData folder in DeepPCB's layout, for the training-data and fold tests."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # models/ is a folder of scripts, not an installed package

from models.deeppcb_files import SplitLine  # noqa: E402


def pcb_line(group: str, ident: str) -> SplitLine:
    g = group.removeprefix("group")
    return SplitLine(f"{group}/{g}/{ident}.jpg", f"{group}/{g}_not/{ident}.txt")


def write_pcbdata(
    root: Path,
    groups: dict[str, int],
    *,
    class_ids: dict[str, int] | None = None,
    tracks: bool = False,
    ext: str = "jpg",
    y: int = 60,
) -> list[SplitLine]:
    """``groups[g]`` pairs of flat 192 px boards per group, one 10x12 px defect each (the
    template's pixels inverted), listed in ``root/trainval.txt``. ``class_ids``: each group's
    defect class (default 5); ``tracks``: copper rows so that crops are not flat; ``ext``: the
    images' format."""
    lines = []
    for group, count in groups.items():
        g = group.removeprefix("group")
        class_id = (class_ids or {}).get(group, 5)
        (root / group / g).mkdir(parents=True)
        (root / group / f"{g}_not").mkdir(parents=True)
        for i in range(count):
            ident = f"{g}{i:03d}"
            template = np.zeros((192, 192), np.uint8)
            if tracks:
                template[20:170:30, :] = 255
            test = template.copy()
            x = 40 + 20 * i
            test[y : y + 12, x : x + 10] = 255 - test[y : y + 12, x : x + 10]
            cv2.imwrite(str(root / group / g / f"{ident}_temp.{ext}"), template)
            cv2.imwrite(str(root / group / g / f"{ident}_test.{ext}"), test)
            box = f"{x} {y} {x + 9} {y + 11} {class_id}\n"
            (root / group / f"{g}_not" / f"{ident}.txt").write_text(box)
            lines.append(pcb_line(group, ident))
    (root / "trainval.txt").write_text("".join(f"{ln.text()}\n" for ln in lines))
    return lines
