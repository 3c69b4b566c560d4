"""Train the defect network on DeepPCB pairs mixed with synthetic boards, then export it.

Usage (on the GPU machine; see models/aoi-defect-v3.md for the whole recipe)::

    python -m models.train_deeppcb --config models/configs/deeppcb-v2.toml --device cuda \\
        --out runs/deeppcb-v2

Several ``--config`` files whose ``[run]``, ``[data]``, ``[deeppcb]`` and ``[synthetic]`` tables
agree train side by side on the very same batches (one data pipeline, one model each); each
model starts from ``[run] seed``, so it equals a run of its config alone. Each model is written
to ``OUT/<config name>/``: ``last.pt``, ``model.onnx`` (checked against PyTorch), ``train.json``.

``--fold LIST`` (repeatable) adds, per config, a model that never trains on the PCB groups of
LIST (leave-groups-out cross-validation, :mod:`models.train_folds`), written to
``OUT/<config name>-<list stem>/``.
"""

from __future__ import annotations

import os

# boardgen fits illumination with numpy's lstsq; multi-threaded OpenBLAS is slower per worker.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import random
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from models.dataset import SyntheticConfig, SyntheticPairs
from models.deeppcb import DeepPcbConfig, DeepPcbPairs, MixedPairs, read_list
from models.export import export_onnx, validate_onnx
from models.masked_loss import MaskedLossConfig, masked_loss
from models.net import (
    OUTPUT_STRIDE,
    AoiDefectNet,
    NetConfig,
    count_macs,
    count_parameters,
)
from models.targets import target_with_ignore as make_target
from models.train import RunConfig, _section, _worker_init
from models.train_folds import (
    SYNTHETIC,
    Fold,
    fold_step,
    held_out_ids,
    keep_mask,
    lr_for,
    read_fold,
    resume,
    save_checkpoint,
)


@dataclass(frozen=True)
class DataConfig:
    """Where the pairs are and how batches are mixed (the TOML config's ``[data]`` table)."""

    root: str = "data/deeppcb-pack"
    train_list: str = "models/splits/deeppcb-train.txt"
    synthetic_per_batch: int = 8
    #: Cells on either side of a box edge marked as the edge band (see MaskedLossConfig).
    edge_band_cells: int = 1
    #: Same-class boxes at most this many pixels apart get a seam between them (0 = none;
    #: see ``models.targets`` and MaskedLossConfig.separate_neighbours).
    seam_gap_px: float = 0.0


@dataclass(frozen=True)
class GpuRunConfig(RunConfig):
    """``models.train.RunConfig`` plus bf16 autocast (CUDA only) and a wall-clock guard."""

    bf16: bool = True
    #: Stop (and say so) once training has run this long; 0 = no limit.
    max_minutes: float = 0.0
    #: Run the learning-rate schedule by time as well (``models.train_folds.schedule_step``),
    #: so that a run that reaches ``max_minutes`` first still ends its cosine decay.
    time_schedule: bool = False


@dataclass(frozen=True)
class Config:
    """A whole config file: ``[run] [model] [loss] [data] [deeppcb] [synthetic]``."""

    name: str
    run: GpuRunConfig = field(default_factory=GpuRunConfig)
    model: NetConfig = field(default_factory=NetConfig)
    loss: MaskedLossConfig = field(default_factory=MaskedLossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    deeppcb: DeepPcbConfig = field(default_factory=DeepPcbConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def shared(self) -> tuple[object, ...]:
        """What configs trained side by side must agree on."""
        return (self.run, self.data, self.deeppcb, self.synthetic)


def load_config(path: Path) -> Config:
    """Read a config TOML; unknown tables or keys are errors that name the file and table."""
    with path.open("rb") as fh:
        raw = tomllib.load(fh)
    tables = {"run", "model", "loss", "data", "deeppcb", "synthetic"}
    unknown = sorted(set(raw) - tables)
    if unknown:
        msg = f"{path}: unknown tables {unknown}; expected {sorted(tables)}"
        raise ValueError(msg)
    return Config(
        name=path.stem,
        run=_section(GpuRunConfig, raw.get("run", {}), "run", path),  # type: ignore[arg-type]
        model=NetConfig.from_mapping(raw.get("model", {})),
        loss=_section(MaskedLossConfig, raw.get("loss", {}), "loss", path),  # type: ignore[arg-type]
        data=_section(DataConfig, raw.get("data", {}), "data", path),  # type: ignore[arg-type]
        deeppcb=DeepPcbConfig.from_mapping(raw.get("deeppcb", {})),
        synthetic=SyntheticConfig.from_mapping(raw.get("synthetic", {})),
    )


class TrainingBatches(Dataset):
    """Mixed pairs as tensors: ``boards`` uint8 [2, H, W], ``target`` int64 [H/S, W/S], and the
    crop's PCB group as an index into :attr:`groups` (``SYNTHETIC`` for synthetic boards)."""

    def __init__(self, pairs: MixedPairs, edge_band_cells: int, seam_gap_px: float = 0.0) -> None:
        self.pairs = pairs
        self.edge_band_cells = edge_band_cells
        self.seam_gap_px = seam_gap_px
        #: The training list's PCB groups, sorted; a crop's group id indexes this.
        self.groups = sorted(set(pairs.deeppcb.groups))
        self._pair_group = [self.groups.index(g) for g in pairs.deeppcb.groups]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sample, ignore, source = self.pairs.draw(index)
        target = make_target(sample, ignore, OUTPUT_STRIDE, self.edge_band_cells, self.seam_gap_px)
        boards = np.stack([sample.test, sample.template])
        group = SYNTHETIC if source < 0 else self._pair_group[source]
        return torch.from_numpy(boards), torch.from_numpy(target), torch.tensor(group)


def make_loader(cfg: Config, workers: int, device: str, start: int = 0) -> DataLoader:
    """The one data pipeline every model of the run reads, from batch ``start`` on."""
    run, data = cfg.run, cfg.data
    n_deeppcb = run.steps * (run.batch - data.synthetic_per_batch)
    deeppcb = DeepPcbPairs(
        Path(data.root), read_list(Path(data.train_list)), cfg.deeppcb, n_deeppcb, run.seed
    )
    synthetic = SyntheticPairs(
        replace(cfg.synthetic, crop_sizes=(cfg.deeppcb.crop_px,)),
        max(run.steps * data.synthetic_per_batch, 1),
        seed=run.seed,
    )
    mixed = MixedPairs(deeppcb, synthetic, run.batch, data.synthetic_per_batch, run.seed)
    return DataLoader(
        TrainingBatches(mixed, data.edge_band_cells, data.seam_gap_px),
        batch_size=run.batch,
        sampler=range(start * run.batch, len(mixed)),
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
        pin_memory=device == "cuda",
    )


def slots(
    configs: list[Config], folds: list[Fold], folds_only: bool = False
) -> list[tuple[str, Config, Fold | None]]:
    """(name, config, fold) of every model of the run: each config (unless ``folds_only``), then
    its fold models."""
    out: list[tuple[str, Config, Fold | None]] = (
        [] if folds_only else [(c.name, c, None) for c in configs]
    )
    out += [(f"{c.name}-{f.name}", c, f) for c in configs for f in folds]
    return out


def train(
    configs: list[Config],
    out: Path,
    device: str,
    workers: int,
    folds: list[Fold] | None = None,
    folds_only: bool = False,
    resume_run: bool = False,
    restart_lr: float = 0.0,
) -> list[tuple[str, AoiDefectNet]]:
    """One optimisation loop per model over shared batches; checkpoints under ``out/<name>``,
    from which ``resume_run`` continues: on the run's own schedule, or, with ``restart_lr``, a
    warm restart (warm-up and cosine again, from that peak, over the steps left)."""
    base = configs[0]
    run = base.run
    random.seed(run.seed)
    np.random.seed(run.seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    runs = slots(configs, folds or [], folds_only)
    names = [name for name, _, _ in runs]
    # The loader's workers are forked before CUDA starts in this process. That did not remove
    # the ~90 s slow start on the GPU machine (docs/benchmarks.md, issue 16, session 8), but a
    # fork of a process without a CUDA context is the safe order. Its seed is drawn at iter().
    torch.manual_seed(run.seed)
    first = out / names[0] / "last.pt"
    start_step = int(torch.load(first, weights_only=True)["step"]) if resume_run else 0
    loader = make_loader(base, workers, device, start_step)
    batches = iter(loader)
    models, optimisers = [], []
    for name, cfg, _ in runs:
        torch.manual_seed(run.seed)  # each model starts as it would alone
        model = AoiDefectNet(cfg.model).to(device, memory_format=torch.channels_last).train()
        models.append(model)
        optimisers.append(
            torch.optim.AdamW(model.parameters(), lr=run.lr, weight_decay=run.weight_decay)
        )
        (out / name).mkdir(parents=True, exist_ok=True)
        if resume_run and resume(out / name / "last.pt", model, optimisers[-1]) != start_step:
            raise SystemExit(f"{out / name / 'last.pt'}: not at step {start_step} as {first} is")
        print(
            f"{name}: {count_parameters(model)} parameters, "
            f"{count_macs(model, 640, 640) / 1e6:.0f} M MACs at 640x640",
            flush=True,
        )
    groups = loader.dataset.groups  # type: ignore[attr-defined]
    held = [held_out_ids(fold, groups) for _, _, fold in runs]  # CPU: masks need no GPU sync
    for (name, _, fold), ids in zip(runs, held, strict=True):
        if fold is not None:
            print(f"{name}: holds out {[groups[i] for i in ids.tolist()]}", flush=True)
    print(
        f"{run.steps} steps of {run.batch} ({base.data.synthetic_per_batch} synthetic) "
        f"crops of {base.deeppcb.crop_px} px, {workers} workers, device {device}",
        flush=True,
    )
    amp = run.bf16 and device == "cuda"
    origin = start_step if restart_lr else 0
    sched = replace(run, lr=restart_lr) if restart_lr else run
    if restart_lr:
        print(f"warm restart at step {start_step}: peak lr {restart_lr:.2e}", flush=True)
    budget_s = 60 * run.max_minutes if run.time_schedule else 0.0
    start = time.perf_counter()
    stopped_at = run.steps
    # Loss sums stay on the device until a log line reads them (no per-step synchronisation).
    window = [torch.zeros((), device=device) for _ in models]
    stepped = np.zeros(len(models))
    window_start, seen = start, 0
    for step, (boards_cpu, target_cpu, group_cpu) in enumerate(batches, start_step):
        boards = boards_cpu.to(device, non_blocking=True)
        target = target_cpu.to(device, non_blocking=True)
        lr = lr_for(step, time.perf_counter() - start, sched, budget_s, origin)
        for k, ((_, cfg, _), model, opt) in enumerate(zip(runs, models, optimisers, strict=True)):
            for group in opt.param_groups:
                group["lr"] = lr
            keep = keep_mask(group_cpu, held[k])
            loss = fold_step(
                model, opt, boards, target, keep, lambda x, t, c=cfg: masked_loss(x, t, c.loss), amp
            )
            if loss is not None:
                window[k] += loss
                stepped[k] += 1
        seen += 1
        done = step + 1
        if done % run.log_every == 0 or done == run.steps:
            now = time.perf_counter()
            rate = seen * run.batch / (now - window_start)
            losses = " ".join(
                f"{n}={float(v) / max(m, 1):.4f}"
                for n, v, m in zip(names, window, stepped, strict=True)
            )
            print(
                f"step {done:6d}/{run.steps} loss {losses} lr {lr:.2e} {rate:6.0f} samples/s "
                f"elapsed {now - start:5.0f}s ETA {(run.steps - done) * run.batch / rate:5.0f}s",
                flush=True,
            )
            window = [torch.zeros((), device=device) for _ in models]
            stepped[:] = 0
            window_start, seen = now, 0
        late = run.max_minutes > 0 and time.perf_counter() - start > 60 * run.max_minutes
        if done % run.checkpoint_every == 0 or done == run.steps or late:
            for name, model, opt in zip(names, models, optimisers, strict=True):
                save_checkpoint(out / name / "last.pt", model, opt, done)
        if late and done < run.steps:
            stopped_at = done
            print(f"STOPPED EARLY at step {done}: over max_minutes={run.max_minutes}", flush=True)
            break
    elapsed = time.perf_counter() - start
    print(f"trained {stopped_at} of {run.steps} steps in {elapsed:.0f}s", flush=True)
    for name, _, fold in runs:
        info = {
            "seconds": elapsed,
            "steps": stopped_at,
            "planned_steps": run.steps,
            "resumed_at_step": start_step,
            "restart_lr": restart_lr,
            "time_schedule": run.time_schedule,
            "device": device,
            "models_side_by_side": len(runs),
            "held_out_groups": sorted(fold.held_out) if fold else [],
        }
        if device == "cuda":
            info["gpu"] = torch.cuda.get_device_name()
        (out / name / "train.json").write_text(json.dumps(info, indent=2))
    return [(name, m.cpu().eval()) for name, m in zip(names, models, strict=True)]


def export(model: AoiDefectNet, folder: Path) -> dict[str, object]:
    """``folder/model.onnx``, checked against PyTorch; its size figures."""
    path = folder / "model.onnx"
    export_onnx(model, path)
    worst = validate_onnx(model, path)
    figures = {
        "parameters": count_parameters(model),
        "macs_640": count_macs(model, 640, 640),
        "ort_vs_torch_max_abs": worst,
    }
    print(f"{path}: {figures}", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    """Command line: train one or more configs side by side, then export each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, action="append", required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/deeppcb"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--workers", type=int, help="override [run] workers")
    parser.add_argument("--steps", type=int, help="override [run] steps (smoke tests)")
    parser.add_argument("--max-minutes", type=float, help="override [run] max_minutes")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/*/last.pt")
    parser.add_argument("--step-schedule", action="store_true", help="time_schedule = false")
    parser.add_argument(
        "--restart",
        type=float,
        default=0.0,
        metavar="LR",
        help="with --resume: warm-up and cosine again from peak LR over the steps left",
    )
    parser.add_argument(
        "--fold", type=Path, action="append", default=[], help="held-out list of one CV fold"
    )
    parser.add_argument(
        "--folds-only", action="store_true", help="train the fold models only, not the configs'"
    )
    args = parser.parse_args(argv)
    configs = [load_config(p) for p in args.config]
    over = {"steps": args.steps, "max_minutes": args.max_minutes}
    over = {k: v for k, v in over.items() if v is not None}
    if args.step_schedule:
        over["time_schedule"] = False
    configs = [replace(c, run=replace(c.run, **over)) for c in configs]  # type: ignore[arg-type]
    for cfg in configs[1:]:
        if cfg.shared() != configs[0].shared():
            msg = f"{cfg.name}: [run] [data] [deeppcb] [synthetic] differ from {configs[0].name}"
            raise SystemExit(msg)
    workers = configs[0].run.workers if args.workers is None else args.workers
    folds = [read_fold(p) for p in args.fold]
    if args.restart and not args.resume:
        raise SystemExit("--restart continues a run: it needs --resume")
    models = train(
        configs, args.out, args.device, workers, folds, args.folds_only, args.resume, args.restart
    )
    for name, model in models:
        figures = export(model, args.out / name)
        info_path = args.out / name / "train.json"
        info = json.loads(info_path.read_text())
        info_path.write_text(json.dumps({**info, **figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
