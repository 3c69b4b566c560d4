"""Registration accuracy (corner error vs ground truth) and time per register, ecc vs patches."""

import sys
import time

import cv2
import numpy as np

sys.path.insert(0, "tests/vision")
from test_registration_accuracy import MOTIONS, corner_errors

from aoi.recipe import RegistrationSettings
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision.registration import Registrar

print("accuracy: max / mean corner error (px) over", len(MOTIONS), "motions", MOTIONS)
for h, w, look, noise in [
    (512, 640, "binary", 4.0),
    (640, 640, "grey", 0.0),
    (1024, 1024, "binary", 4.0),
    (3000, 4096, "binary", 0.0),
]:
    b = golden_board(h, w, 5, look)
    row = []
    for m in ("ecc", "patches"):
        e = corner_errors(Registrar(b, RegistrationSettings(method=m)), b, noise)
        row.append(f"{m} {e.max():.3f}/{e.mean():.3f}")
    print(f"  {w}x{h} {look} noise {noise}: " + "  ".join(row), flush=True)
print("time per register (ms), taskset -c 0, 40 registers of one moved board (-2.5, 1.5, 0.8 deg)")
for h, w in [(640, 640), (1024, 1024), (3000, 4096)]:
    b = golden_board(h, w, 5, "binary")
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.8, 1.0)
    m[:, 2] += (-2.5, 1.5)
    mv = cv2.warpAffine(b, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    row = []
    for meth in ("ecc", "patches"):
        r = Registrar(b, RegistrationSettings(method=meth))
        r.register(mv)
        ts = []
        for _ in range(40):
            t = time.perf_counter()
            r.register(mv)
            ts.append(time.perf_counter() - t)
        ts = np.array(ts) * 1e3
        row.append(
            f"{meth} min {ts.min():.1f} p50 {np.median(ts):.1f} p99 {np.percentile(ts, 99):.1f}"
        )
    print(f"  {w}x{h}: " + "   ".join(row), flush=True)
