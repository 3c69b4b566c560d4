"""Where registration's time goes on the device, per frame (issue 15): each graph run, the host's
fit and everything else in ``Registrar.register``, with wall-clock timers around each call.

    python3 tools/gpu/devreg_prof.py [--device cuda] [--runs 300]

One JSON line per frame size: mean microseconds per frame of each part, and the register total.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable

import cv2
import numpy as np

from aoi.inference import devreg
from aoi.inference.devreg import DeviceSteps
from aoi.recipe import RegistrationSettings
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision import patchreg
from aoi.vision.registration import Registrar


def _timed(spent: dict[str, float], name: Callable[..., str], f: Callable) -> Callable:
    def wrapper(*args: object, **kwargs: object) -> object:
        t = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            spent[name(*args)] += time.perf_counter() - t

    return wrapper


def profile(h: int, w: int, device: str, runs: int) -> dict[str, object]:
    board = golden_board(h, w, 5, "binary")
    reg = Registrar(board, RegistrationSettings())
    reg.use_device(lambda plan: DeviceSteps(plan, device=device))
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.6, 1.0)
    m[:, 2] += (2.2, -1.7)
    frame = cv2.warpAffine(board, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    for _ in range(20):
        reg.register(frame)
    spent: dict[str, float] = defaultdict(float)
    saved = (devreg._Bound.run, patchreg.fit_pairs, devreg.SharedFrame.upload)
    devreg._Bound.run = _timed(spent, lambda _s, *f: "run:" + ",".join(f), saved[0])
    patchreg.fit_pairs = _timed(spent, lambda *_a: "host fit", saved[1])
    devreg.SharedFrame.upload = _timed(spent, lambda *_a: "upload", saved[2])
    try:
        t = time.perf_counter()
        for _ in range(runs):
            reg.register(frame)
        total = time.perf_counter() - t
    finally:
        devreg._Bound.run, patchreg.fit_pairs, devreg.SharedFrame.upload = saved
    parts = {k: round(v / runs * 1e6, 1) for k, v in sorted(spent.items())}
    parts["other"] = round((total - sum(spent.values())) / runs * 1e6, 1)
    return {"frame": [h, w], "register_us": round(total / runs * 1e6, 1), "parts_us": parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    for h, w in ((640, 640), (1024, 1024), (3000, 4096)):
        print(json.dumps(profile(h, w, args.device, args.runs)), flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
