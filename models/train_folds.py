"""Leave-groups-out cross-validation for ``models.train_deeppcb``: fold models side by side.

A fold holds out whole PCB groups (designs): its list (``trainval.txt`` format, e.g.
``models/splits/deeppcb-cv4-fold1.txt``) names the pairs ``aoi eval`` scores the fold's model on,
and the groups of those pairs are what that model never trains on. With ``--fold LIST`` (once per
fold) every config trains one more model per fold on the very same batches as the config's own
model (trained on the whole training list): each batch's DeepPCB crops carry their source pair's
group, and a fold model's step sees only the crops whose group it does not hold out (synthetic
boards go to every model).

The held-out crops are dropped **before** the forward pass rather than given zero loss weight:
the network has BatchNorm, whose batch statistics would otherwise carry a held-out crop into the
gradient of every other crop of the batch (and into the running statistics the ONNX file keeps).
The kept crops are then padded to a multiple of :data:`PAD_TO` with repeats of themselves whose
targets are all IGNORE (no loss, only BatchNorm's statistics see them twice): every new batch
size cost cuDNN 3.3-4.7 s on its first step on the H200 (15 ms after), and fold models meet a
new size most batches, which was the 113-161 s slow start of every training call.

Nothing here reads data; ``tests/models/test_train_folds.py`` checks the exclusion on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from models.deeppcb_files import read_list
from models.targets import IGNORE
from models.train import RunConfig, _lr_at

#: Kept crops are padded to a multiple of this many (or the whole batch): few batch sizes.
PAD_TO = 8

#: The group id a synthetic crop carries: no fold holds it out.
SYNTHETIC = -1


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: its name and the PCB groups its model never trains on."""

    name: str
    held_out: frozenset[str]


def read_fold(path: Path) -> Fold:
    """The fold whose held-out pairs ``path`` lists (named after the file's stem)."""
    groups = frozenset(line.group for line in read_list(path))
    if not groups:
        msg = f"{path}: a fold list must name at least one pair"
        raise ValueError(msg)
    return Fold(path.stem, groups)


def held_out_ids(fold: Fold | None, groups: Sequence[str]) -> torch.Tensor:
    """Ids (indices into ``groups``, the training data's group table) a fold holds out."""
    if fold is None:
        return torch.zeros(0, dtype=torch.int64)
    missing = sorted(fold.held_out - set(groups))
    if missing:
        msg = f"fold {fold.name}: groups {missing} are not in the training list {sorted(groups)}"
        raise ValueError(msg)
    return torch.tensor([k for k, g in enumerate(groups) if g in fold.held_out], dtype=torch.int64)


def keep_mask(sample_groups: torch.Tensor, held_out: torch.Tensor) -> torch.Tensor:
    """Per crop of a batch: whether a model that holds out ``held_out`` trains on it."""
    return ~torch.isin(sample_groups, held_out.to(sample_groups.device))


def fold_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    boards: torch.Tensor,
    target: torch.Tensor,
    keep: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    amp: bool = False,
) -> torch.Tensor | None:
    """One optimisation step on the crops ``keep`` selects; the detached loss (on the model's
    device, so reading it is the caller's choice), or None (no step at all, so no weight decay
    or moment update either) when it selects none.

    ``keep`` is best a CPU tensor (the batch's groups before they are copied to the device):
    then choosing the crops needs no wait for the GPU.
    """
    keep = keep.cpu()
    if not bool(keep.any()):
        return None
    if not bool(keep.all()):
        index, kept = padded_index(keep)
        index = index.to(boards.device, non_blocking=True)
        boards, target = boards.index_select(0, index), target.index_select(0, index)
        target[kept:] = IGNORE  # the repeats: no loss
    with torch.autocast("cuda", torch.bfloat16, enabled=amp):
        logits = model.logits(boards)  # type: ignore[operator]
    loss = loss_fn(logits.float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def padded_index(keep: torch.Tensor, multiple: int = PAD_TO) -> tuple[torch.Tensor, int]:
    """The indices of the crops ``keep`` selects, then repeats of them up to a multiple of
    ``multiple`` (at most the batch's size), and how many are the kept crops themselves."""
    index = keep.nonzero().squeeze(1)
    kept = len(index)
    size = min(len(keep), -(-kept // multiple) * multiple)
    repeats = index[torch.arange(size - kept) % kept]
    return torch.cat([index, repeats]), kept


def schedule_step(
    step: int, elapsed_s: float, run: RunConfig, budget_s: float, origin: int = 0
) -> int:
    """The step the learning-rate schedule is at, counted from ``origin`` (where a warm restart
    began it again; 0 for a run's own schedule): ``step - origin``, or, with a time budget, the
    share of it spent times the schedule's steps when that is further, so that the cosine decay
    ends within the budget however fast the machine is (a run cut off mid-schedule keeps a high
    rate)."""
    local = step - origin
    if budget_s <= 0:
        return local
    return max(local, int((run.steps - origin) * elapsed_s / budget_s))


def lr_for(step: int, elapsed_s: float, run: RunConfig, budget_s: float, origin: int = 0) -> float:
    """The learning rate at ``schedule_step`` (the last one's once the schedule is done): the
    warm-up and cosine of ``run`` over the steps from ``origin`` to ``run.steps``."""
    span = replace(run, steps=run.steps - origin)
    return _lr_at(min(schedule_step(step, elapsed_s, run, budget_s, origin), span.steps - 1), span)


def save_checkpoint(
    path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int
) -> None:
    """``last.pt``: the network's config and weights (what ``models.export`` reads), the
    optimiser's state and the steps done, so that ``resume`` continues the same run."""
    net = model.config  # type: ignore[attr-defined]
    torch.save(
        {
            "net_config": {**asdict(net), "deep_dilations": list(net.deep_dilations)},
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimiser": opt.state_dict(),
            "step": step,
        },
        path,
    )


def resume(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    """Load ``save_checkpoint``'s file into ``model`` and ``opt``; the steps it had done.

    The batches depend only on (seed, index), so a run resumed at step k reads the very batches
    the uninterrupted run reads from k on."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "optimiser" not in state:
        msg = f"{path}: field 'optimiser' missing (expected a checkpoint that can resume)"
        raise ValueError(msg)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimiser"])
    return int(state["step"])
