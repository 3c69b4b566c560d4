"""What postprocessing one whole-frame panel map costs (issue 15): a 1504x2048 class map (the
reduced output of the 3008x4096 panel) with six defects far apart and N stray cells, and a
clean one; p50 of 30 runs on this machine's CPU.

    PYTHONPATH=. python tools/figures/postprocess_map.py [--stray 30]

Run it at two commits to compare (docs/benchmarks.md, "Issue 15, fifth round").
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from aoi.recipe import find_recipe, load_recipe
from aoi.types import ClassMaps
from aoi.vision.postprocess import Postprocessor
from aoi.vision.preprocess import Tile


def _p50(run, n: int = 30) -> float:
    run()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        run()
        times.append((time.perf_counter() - t) * 1e3)
    return round(float(np.percentile(times, 50)), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stray", type=int, default=30, help="stray non-background cells")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    h, w = 1504, 2048
    classes = np.zeros((1, h, w), np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        classes[0, y : y + 12, x : x + 9] = rng.integers(1, 7)
    cells = rng.integers(0, h * w, args.stray)
    classes.flat[cells] = rng.integers(1, 7, args.stray)
    scores = rng.random((1, h, w)).astype(np.float16)
    post = Postprocessor(load_recipe(find_recipe("panel-c-4096x3000")).recipe)
    tile = [Tile(0, 0, 4096, 3008, (0, 0, 4096, 3008))]
    maps = ClassMaps(classes, scores)
    clean = ClassMaps(np.zeros_like(classes), scores)
    found = post.run(maps, tile, (3008, 4096))
    out = {
        "map": [h, w],
        "stray_cells": args.stray,
        "defects_found": len(found),
        "p50_ms": _p50(lambda: post.run(maps, tile, (3008, 4096))),
        "clean_p50_ms": _p50(lambda: post.run(clean, tile, (3008, 4096))),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
