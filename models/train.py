"""Train the defect network on synthetic boards, then export, validate, time and evaluate it.

Usage::

    python -m models.train --config models/configs/synthetic-v1.toml --out runs/synthetic-v1
    python -m models.export --checkpoint runs/synthetic-v1/last.pt --out models/aoi-defect-v1.onnx

Boards are generated on the fly (``models.dataset.SyntheticPairs``, one seed per item) in a
DataLoader worker; everything is seeded, so a run is reproducible on the same machine.
"""

from __future__ import annotations

import os

# boardgen fits illumination with numpy's lstsq; multi-threaded OpenBLAS makes that 4x slower
# on a busy 2-core CPU. This must run before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import logging
import math
import random
import resource
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.data import DataLoader, Dataset

from models.dataset import PairSample, SyntheticConfig, SyntheticPairs, augment, box_target
from models.evaluate import EvalSpec, format_report, onnx_predictor, run_spec
from models.export import benchmark_onnx, export_onnx, validate_onnx
from models.net import (
    NUM_CLASSES,
    OUTPUT_STRIDE,
    AoiDefectNet,
    NetConfig,
    count_macs,
    count_parameters,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """Optimisation and bookkeeping (the TOML config's ``[run]`` table)."""

    seed: int = 1
    steps: int = 2000
    batch: int = 16
    lr: float = 4e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    threads: int = 2
    workers: int = 1
    log_every: int = 50
    checkpoint_every: int = 500


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms (the TOML config's ``[loss]`` table)."""

    background_weight: float = 1.0
    defect_weight: float = 3.0
    dice_weight: float = 0.5
    hard_background_weight: float = 0.0
    hard_background_fraction: float = 0.01


@dataclass(frozen=True)
class TrainConfig:
    """A whole training config file, one typed section per table."""

    run: RunConfig = field(default_factory=RunConfig)
    model: NetConfig = field(default_factory=NetConfig)
    data: SyntheticConfig = field(default_factory=SyntheticConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalSpec = field(default_factory=EvalSpec)


def _section(cls: type, table: dict[str, object], name: str, path: Path) -> object:
    unknown = sorted(set(table) - set(cls.__dataclass_fields__))
    if unknown:
        msg = f"{path}: [{name}] has unknown keys {unknown}"
        raise ValueError(msg)
    return cls(**table)


def load_config(path: Path) -> TrainConfig:
    """Read a training config TOML; unknown tables or keys are errors naming file and table."""
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    unknown = sorted(set(raw) - {"run", "model", "data", "loss", "eval"})
    if unknown:
        msg = f"{path}: unknown tables {unknown}; expected run, model, data, loss, eval"
        raise ValueError(msg)
    return TrainConfig(
        run=_section(RunConfig, raw.get("run", {}), "run", path),  # type: ignore[arg-type]
        model=NetConfig.from_mapping(raw.get("model", {})),
        data=SyntheticConfig.from_mapping(raw.get("data", {})),
        loss=_section(LossConfig, raw.get("loss", {}), "loss", path),  # type: ignore[arg-type]
        eval=_section(EvalSpec, raw.get("eval", {}), "eval", path),  # type: ignore[arg-type]
    )


class TrainingPairs(Dataset):
    """Synthetic pairs as tensors: ``boards`` uint8 [2, H, W] and ``target`` int64 [H/S, W/S]."""

    def __init__(self, pairs: SyntheticPairs, seed: int) -> None:
        self.pairs = pairs
        self.seed = seed

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        group = index // self.pairs.size_group
        transpose = bool(np.random.default_rng([self.seed, group, 3]).random() < 0.5)
        sample: PairSample = augment(
            self.pairs[index], np.random.default_rng([self.seed, index, 2]), transpose
        )
        h, w = sample.test.shape
        target = box_target(sample.boxes_xyxy_px, sample.class_ids, h, w, OUTPUT_STRIDE)
        boards = np.stack([sample.test, sample.template])
        return torch.from_numpy(boards), torch.from_numpy(target)


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Class-weighted cross-entropy, a hard-background term and a soft Dice over the defects.

    A false call is a handful of background pixels that look like a defect, so the hardest
    ``hard_background_fraction`` of the batch's background pixels get an extra cross-entropy term.
    Dice is summed over the whole batch with a smoothing of 1, so a class absent from the batch
    still pushes its probabilities towards zero.
    """
    weights = torch.full((NUM_CLASSES,), cfg.defect_weight, device=logits.device)
    weights[0] = cfg.background_weight
    ce = F.cross_entropy(logits, target, weight=weights)
    if cfg.hard_background_weight > 0:
        per_pixel = F.cross_entropy(logits, target, reduction="none")
        background = per_pixel[target == 0]
        if background.numel():
            k = max(1, int(background.numel() * cfg.hard_background_fraction))
            ce = ce + cfg.hard_background_weight * background.topk(k).values.mean()
    if cfg.dice_weight <= 0:
        return ce
    probs = torch.softmax(logits, dim=1)[:, 1:]
    onehot = F.one_hot(target, NUM_CLASSES).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype)
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)
    return ce + cfg.dice_weight * dice.mean()


def _lr_at(step: int, cfg: RunConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def save_checkpoint(path: Path, model: AoiDefectNet, step: int, cfg: TrainConfig) -> None:
    """Write weights and the network's config (all :func:`models.export.load_checkpoint` needs)."""
    net = cfg.model
    torch.save(
        {
            "net_config": {**net.__dict__, "deep_dilations": list(net.deep_dilations)},
            "model": model.state_dict(),
            "step": step,
        },
        path,
    )


def train(cfg: TrainConfig, out: Path, device: str) -> AoiDefectNet:
    """Run the optimisation loop and write checkpoints under ``out``; return the trained model."""
    run = cfg.run
    random.seed(run.seed)
    np.random.seed(run.seed)  # for any library code that draws from numpy's global state
    torch.manual_seed(run.seed)
    torch.set_num_threads(run.threads)
    out.mkdir(parents=True, exist_ok=True)
    pairs = SyntheticPairs(cfg.data, run.steps * run.batch, seed=run.seed, size_group=run.batch)
    loader = DataLoader(
        TrainingPairs(pairs, run.seed),
        batch_size=run.batch,
        shuffle=False,
        num_workers=run.workers,
        worker_init_fn=_worker_init if run.workers else None,
        prefetch_factor=4 if run.workers else None,
        pin_memory=device == "cuda",
    )
    # channels_last makes the depthwise convolutions of a CPU training step ~1.7x faster.
    model = AoiDefectNet(cfg.model).to(device, memory_format=torch.channels_last)
    params = count_parameters(model)
    macs = count_macs(model, 640, 640)
    print(f"network: {params} parameters, {macs / 1e6:.1f} M MACs at 640x640, device {device}")
    optimiser = torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=run.weight_decay)
    model.train()
    start, cpu_start = time.perf_counter(), time.process_time()
    window_loss, window_start, seen = 0.0, start, 0
    for step, (boards_cpu, target_cpu) in enumerate(loader):
        for group in optimiser.param_groups:
            group["lr"] = _lr_at(step, run)
        boards = boards_cpu.to(device, non_blocking=True)
        target = target_cpu.to(device, non_blocking=True)
        loss = segmentation_loss(model.logits(boards), target, cfg.loss)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        window_loss += float(loss.detach())
        seen += boards.shape[0]
        done = step + 1
        if done % run.log_every == 0 or done == run.steps:
            now = time.perf_counter()
            rate = seen / (now - window_start)
            eta = (run.steps - done) * run.batch / rate
            print(
                f"step {done:5d}/{run.steps} loss {window_loss / max(seen / run.batch, 1):.4f} "
                f"lr {_lr_at(step, run):.2e} {rate:6.1f} samples/s "
                f"elapsed {now - start:6.0f}s ETA {eta:5.0f}s",
                flush=True,
            )
            window_loss, window_start, seen = 0.0, now, 0
        if done % run.checkpoint_every == 0 or done == run.steps:
            save_checkpoint(out / f"step-{done:05d}.pt", model.cpu(), done, cfg)
            save_checkpoint(out / "last.pt", model, done, cfg)
            model.to(device, memory_format=torch.channels_last).train()
    elapsed = time.perf_counter() - start
    del loader  # reap the workers, so that their CPU time is counted below
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = time.process_time() - cpu_start + workers.ru_utime + workers.ru_stime
    print(
        f"trained {run.steps} steps in {elapsed:.0f}s wall ({elapsed / 60:.1f} min), "
        f"{cpu_s:.0f}s CPU time (trainer and data workers)"
    )
    (out / "train_time.json").write_text(
        json.dumps(
            {
                "wall_seconds": elapsed,
                "cpu_seconds": cpu_s,
                "steps": run.steps,
                "device": device,
                "threads": run.threads,
            }
        ),
    )
    return model.cpu().eval()


def finish(model: AoiDefectNet, cfg: TrainConfig, out: Path, evaluate_boards: bool) -> dict:
    """Export to ``out/model.onnx``, validate against PyTorch, time it, evaluate; return figures."""
    onnx_path = out / "model.onnx"
    export_onnx(model, onnx_path)
    worst = validate_onnx(model, onnx_path)
    latency = benchmark_onnx(onnx_path)
    figures: dict = {
        "parameters": count_parameters(model),
        "macs_640": count_macs(model, 640, 640),
        "ort_vs_torch_max_abs": worst,
        "ort_cpu_2threads_640": latency,
    }
    print(f"exported {onnx_path}: ORT vs torch max abs {worst:.1e}, latency {latency}")
    if evaluate_boards:
        results = run_spec(onnx_predictor(onnx_path), cfg.eval)
        for result in results:
            print(format_report(result))
        figures["eval"] = results
    (out / "metrics.json").write_text(json.dumps(figures, indent=2))
    return figures


def main(argv: list[str] | None = None) -> int:
    """Command line: train from a TOML config, then export and evaluate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="run folder (default runs/<config name>)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--steps", type=int, help="override [run] steps (quick trials)")
    parser.add_argument("--workers", type=int, help="override [run] workers (many-core machines)")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    cfg = load_config(args.config)
    overrides = {"steps": args.steps, "workers": args.workers}
    run = replace(cfg.run, **{k: v for k, v in overrides.items() if v is not None})
    cfg = replace(cfg, run=run)
    out = args.out or Path("runs") / args.config.stem
    model = train(cfg, out, args.device)
    finish(model, cfg, out, evaluate_boards=not args.no_eval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
