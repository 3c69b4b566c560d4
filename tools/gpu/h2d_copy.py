"""Host-to-device copy time on the GPU machine: from pageable, page-locked and registered memory,
and through a copy into page-locked memory first (issue 15, twelfth round). It uses the
machine's PyTorch as a measuring tool only; the station copies through ONNX Runtime.

    python3 tools/gpu/h2d_copy.py
"""

import time
from collections.abc import Callable

import numpy as np
import torch

PANEL = 3000 * 4096


def timed(copy: Callable[[], object], runs: int = 50) -> str:
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        copy()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return f"p50 {np.median(ms):.3f} p99 {np.percentile(ms, 99):.3f}"


def main() -> None:
    device = torch.empty(PANEL, dtype=torch.uint8, device="cuda")
    rng = np.random.default_rng(0)
    pageable = rng.integers(0, 255, PANEL, dtype=np.uint8)
    pinned = torch.empty(PANEL, dtype=torch.uint8).pin_memory()
    pinned_np = pinned.numpy()
    print("pageable H2D 12MB", timed(lambda: device.copy_(torch.from_numpy(pageable))))
    print("pinned   H2D 12MB", timed(lambda: device.copy_(pinned, non_blocking=True)))
    print("memcpy host->pinned 12MB", timed(lambda: np.copyto(pinned_np, pageable)))

    def staged() -> None:
        np.copyto(pinned_np, pageable)
        device.copy_(pinned, non_blocking=True)

    print("memcpy+pinned H2D", timed(staged))
    registered = rng.integers(0, 255, PANEL, dtype=np.uint8)
    print("register", torch.cuda.cudart().cudaHostRegister(registered.ctypes.data, PANEL, 0))
    print("registered H2D", timed(lambda: device.copy_(torch.from_numpy(registered))))
    for size in (640 * 640, 1024 * 1024):
        dst, src, pin = device[:size], torch.from_numpy(pageable[:size]), pinned[:size]
        print(
            size,
            "pageable",
            timed(lambda d=dst, s=src: d.copy_(s)),
            "pinned",
            timed(lambda d=dst, p=pin: d.copy_(p, non_blocking=True)),
        )


if __name__ == "__main__":
    main()
