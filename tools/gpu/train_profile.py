"""Where issue 16's training time goes, on the GPU machine: the data pipeline alone, and the
optimisation steps alone (one fixed batch on the GPU) for 1 and for 5 models side by side.

    PYTHONPATH=<tree> python3 tools/gpu/train_profile.py --config models/configs/deeppcb-v4.toml \
        [--workers 14] [--batches 150] [--steps 60] [--device cpu --root data/deeppcb-all]
    ... train_profile.py --shapes   # the first step's time per new batch size, cuDNN on and off

Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from models.masked_loss import masked_loss
from models.net import AoiDefectNet
from models.train_deeppcb import load_config, make_loader
from models.train_folds import fold_step


def _loader(cfg, workers: int, batches: int, device: str) -> dict[str, float]:
    t0 = time.perf_counter()
    loader = make_loader(cfg, workers, device)
    it = iter(loader)
    next(it)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(batches):
        next(it)
    rate = batches / (time.perf_counter() - t1)
    return {"what": "loader", "workers": workers, "first_batch_s": round(first, 1),
            "batches_per_s": round(rate, 2)}  # fmt: skip


def _steps(cfg, models: int, steps: int, batch: tuple) -> dict[str, float]:
    boards, target = (t.to("cuda") for t in batch[:2])
    keep = torch.ones(boards.shape[0], dtype=torch.bool)
    nets, opts = [], []
    for _ in range(models):
        net = AoiDefectNet(cfg.model).to("cuda", memory_format=torch.channels_last).train()
        nets.append(net)
        opts.append(torch.optim.AdamW(net.parameters(), lr=1e-3))

    def loss(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return masked_loss(x, t, cfg.loss)

    def one() -> None:
        for net, opt in zip(nets, opts, strict=True):
            fold_step(net, opt, boards, target, keep, loss, True)

    for _ in range(10):
        one()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    torch.cuda.synchronize()
    rate = steps / (time.perf_counter() - t0)
    return {"what": "steps", "models": models, "steps_per_s": round(rate, 2)}


def _shapes(cfg, batch: tuple, sizes: list[int], cudnn: bool) -> list[dict[str, object]]:
    """The first and the third step of one fresh model per batch size, as a fold model meets a
    new size (it keeps only the crops of groups it trains on): the ~90 s slow start's suspect."""
    torch.backends.cudnn.enabled = cudnn
    torch.backends.cudnn.deterministic = True  # as train() sets it
    net = AoiDefectNet(cfg.model).to("cuda", memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    boards, target = (t.to("cuda") for t in batch[:2])

    def loss(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return masked_loss(x, t, cfg.loss)

    out = []
    for n in sizes:
        keep = torch.zeros(boards.shape[0], dtype=torch.bool)
        keep[:n] = True
        times = []
        for _ in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fold_step(net, opt, boards, target, keep, loss, True)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        first, third = (round(1e3 * times[i], 1) for i in (0, 2))
        row = {"what": "shape", "cudnn": cudnn, "batch": n}
        out.append({**row, "first_ms": first, "third_ms": third})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, default=Path("models/configs/deeppcb-v4.toml"))
    parser.add_argument("--workers", type=int, default=14)
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--device", default="cuda", help="cpu: the loader only")
    parser.add_argument("--root", default="", help="override [data] root (the packed pairs)")
    parser.add_argument(
        "--shapes", action="store_true", help="only the first step per new batch size, and exit"
    )
    args = parser.parse_args()
    cfg = load_config(args.config)
    if args.root:
        cfg = replace(cfg, data=replace(cfg.data, root=args.root))
    torch.backends.cudnn.benchmark = False
    if args.shapes:
        batch = next(iter(make_loader(cfg, 0, "cuda")))
        for cudnn in (True, False):
            for row in _shapes(cfg, batch, [48, 47, 46, 45, 40, 36, 48], cudnn):
                print(json.dumps(row), flush=True)
        return
    # The loader before CUDA starts in this process (as train() now does), the steps, then the
    # loader again in a process holding a CUDA context (as train() did before 2026-11-29: on
    # the GPU machine its first batch had not come after ~150 s).
    first = _loader(cfg, args.workers, args.batches, args.device)
    print(json.dumps({**first, "cuda": False}), flush=True)
    if args.device != "cuda":
        return
    batch = next(iter(make_loader(cfg, 0, "cuda")))
    for models in (1, 5):
        print(json.dumps(_steps(cfg, models, args.steps, batch)), flush=True)
    again = _loader(cfg, args.workers, args.batches, args.device)
    print(json.dumps({**again, "cuda": True}), flush=True)


if __name__ == "__main__":
    main()
