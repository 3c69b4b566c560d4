"""Overlays of the false calls ``aoi eval --defect-free`` lists: each board rebuilt as the
evaluation made it (the template moved and noisy, ``aoi.app.defect_free``), inspected again
with the recipe, its defects boxed in red, three boards a row.

    PYTHONPATH=. python tools/figures/defect_free_calls.py MODEL SPLIT NAME[,NAME...] OUT.jpg \
        [--recipe deeppcb-640]

NAMEs are the JSON's ``defect_free.worst`` entries (``<template stem>#<board index>``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from aoi.app.defect_free import Disturbance, disturbed_copy
from aoi.app.evaluation import read_grey, read_split
from aoi.inference import create_backend
from aoi.pipeline import Pipeline
from aoi.pixels import to_mono8
from aoi.recipe import find_recipe, load_recipe
from aoi.types import Frame

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model", type=Path)
parser.add_argument("split", type=Path)
parser.add_argument("names")
parser.add_argument("out", type=Path)
parser.add_argument("--recipe", default="deeppcb-640")
parser.add_argument("--data", type=Path, default=Path("../shared/data/deeppcb/PCBData"))
args = parser.parse_args()
loaded = load_recipe(find_recipe(args.recipe))
entries = {e.template.stem: e for e in read_split(args.data, args.split)}
tiles = []
profile = loaded.recipe.geometry.profile
with create_backend("onnxruntime", args.model, profile, threads=2, recipe=loaded) as backend:
    for name in args.names.split(","):
        stem, index = name.split("#")
        template = to_mono8(read_grey(entries[stem].template))
        image, motion = disturbed_copy(template, int(index), Disturbance())
        frame = Frame(image, int(index), 0, "defect-free", name=name)
        result = Pipeline(loaded, backend, template=template).inspect(frame)
        out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        found = result.defects
        for box, cls, score in zip(
            found.bbox_xyxy_px, found.class_names, found.scores, strict=True
        ):
            x0, y0, x1, y1 = (int(v) for v in box)
            cv2.rectangle(out, (x0 - 6, y0 - 6), (x1 + 6, y1 + 6), (0, 0, 255), 3)
            label = f"{cls} {score:.3f}"
            cv2.putText(out, label, (max(0, x0 - 60), max(14, y0 - 12)), 0, 0.6, (0, 0, 255), 2)
            print(name, cls, round(float(score), 4), (x0, y0, x1, y1), motion, flush=True)
        cv2.putText(out, name, (6, 24), 0, 0.7, (255, 0, 0), 2)
        tiles.append(out)
blank = np.zeros_like(tiles[0])
rows = [np.hstack([*tiles[i : i + 3], blank, blank][:3]) for i in range(0, len(tiles), 3)]
cv2.imwrite(str(args.out), cv2.resize(np.vstack(rows), None, fx=0.5, fy=0.5))
print("written", args.out)
