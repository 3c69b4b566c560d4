"""``aoi eval --export DIR``: detections in DeepPCB's result format, for the benchmark's own scorer.

The format is the one DeepPCB's README (``tangsanli5201/DeepPCB``, "Benchmarks") asks of a
submission to its ``evaluation/`` kit (``python script.py -s=res.zip -g=gt.zip``):

- one ``<image name>.txt`` per image, the name exactly as in the kit's ``gt.zip``: the pair's id
  (``20085000`` for ``group20085/20085/20085000.jpg`` in a split list, the name of its annotation
  file ``20085000.txt``);
- one detection a line, ``x1,y1,x2,y2,confidence,type``, with no space anywhere: the box's top
  left and bottom right corners in the test image's pixels, a float confidence, and the type as
  one of ``open,short,mousebite,spur,copper,pin-hole``;
- the ``.txt`` files zipped with no sub-directory in the zip.

Two sets are written, because the kit scores whatever it is given: ``curves/`` and
``res_curves.zip`` hold every detection down to the curve floor (what mAP needs), ``deployed/`` and
``res_deployed.zip`` only what the station calls a defect at the recipe's thresholds (what its
precision, recall and F-score are).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aoi.errors import AoiError
from aoi.types import DEFECT_CLASSES, Defects

log = logging.getLogger(__name__)

#: DeepPCB's type names (its README) for the station's classes, in DEFECT_CLASSES order: the
#: annotation files' type ids 1..6 are open, short, mousebite, spur, copper, pin-hole.
DEEPPCB_TYPES: dict[str, str] = dict(
    zip(DEFECT_CLASSES, ("open", "short", "mousebite", "spur", "copper", "pin-hole"), strict=True)
)


@dataclass(frozen=True)
class ExportedSet:
    """One exported set: its folder of ``.txt`` files and the zip of them."""

    folder: Path
    zip_path: Path
    files: int
    detections: int


def result_lines(defects: Defects) -> list[str]:
    """One ``x1,y1,x2,y2,confidence,type`` line per detection, highest confidence first.

    The confidence is the network's float32 score written with the fewest digits that read back
    as the same float32, so a rescoring ranks detections exactly as the station did.
    """
    lines = []
    order = np.argsort(-defects.scores, kind="stable")
    boxes = defects.bbox_xyxy_px[order].tolist()
    for (x0, y0, x1, y1), score, name in zip(
        boxes, defects.scores[order], [defects.class_names[i] for i in order], strict=True
    ):
        confidence = np.format_float_positional(np.float32(score), trim="-")
        lines.append(f"{x0},{y0},{x1},{y1},{confidence},{DEEPPCB_TYPES[name]}")
    return lines


def read_result_file(path: Path) -> Defects:
    """One exported ``<name>.txt`` read back, as :func:`result_lines` wrote it (no file: no
    detections), for tools that rescore or fuse exports (``tools/eval_errors.py``,
    ``tools/figures/fuse_exports.py``)."""
    ids = {name: i for i, name in enumerate(DEEPPCB_TYPES.values(), start=1)}
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except FileNotFoundError:
        return Defects.empty()
    rows = [line.split(",") for line in lines if line]
    if not rows:
        return Defects.empty()
    boxes = np.array([[int(v) for v in r[:4]] for r in rows], np.int64)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    classes = np.array([ids[r[5]] for r in rows], np.int64)
    return Defects(boxes, classes, np.array([float(r[4]) for r in rows], np.float32), areas)


def write_set(folder: Path, zip_path: Path, images: Sequence[tuple[str, Defects]]) -> ExportedSet:
    """``<name>.txt`` per image into ``folder`` (an image without detections gets an empty
    file), and all of them at the root of ``zip_path``."""
    names = [name for name, _ in images]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        msg = f"two pairs share an image name, the export would mix them up: {', '.join(twice)}"
        raise AoiError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, defects in images:
                lines = result_lines(defects)
                count += len(lines)
                text = "".join(f"{line}\n" for line in lines)
                (folder / f"{name}.txt").write_text(text, encoding="ascii")
                archive.writestr(f"{name}.txt", text)
    except OSError as err:
        msg = f"{folder}: cannot write the export ({err})"
        raise AoiError(msg) from err
    return ExportedSet(folder, zip_path, len(images), count)


def export_results(
    out: Path,
    curves: Sequence[tuple[str, Defects]],
    deployed: Sequence[tuple[str, Defects]],
) -> tuple[ExportedSet, ExportedSet]:
    """Both sets under ``out``: ``curves/`` and ``res_curves.zip``, ``deployed/`` and
    ``res_deployed.zip``."""
    out.mkdir(parents=True, exist_ok=True)
    wide = write_set(out / "curves", out / "res_curves.zip", curves)
    called = write_set(out / "deployed", out / "res_deployed.zip", deployed)
    log.info("exported %d images to %s", wide.files, out)
    return wide, called
