"""The training loss of :mod:`models.train_deeppcb`: ``models.train.segmentation_loss`` over a
coded target (``models.targets``) whose IGNORE, edge-band and seam cells it decodes itself."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812

from models.net import NUM_CLASSES
from models.targets import EDGE_BAND, IGNORE, SEAM
from models.train import LossConfig


@dataclass(frozen=True)
class MaskedLossConfig(LossConfig):
    """``models.train.LossConfig`` plus whether the loss skips the box-edge band."""

    ignore_box_edges: bool = True
    #: Learn background on the seams between same-class neighbours (else their plain class).
    separate_neighbours: bool = False


def masked_loss(logits: torch.Tensor, coded: torch.Tensor, cfg: MaskedLossConfig) -> torch.Tensor:
    """``models.train.segmentation_loss`` that skips IGNORE (and maybe edge-band) cells.

    The coded target is decoded as ``models.targets.decode_target`` does: seam cells become
    background (``separate_neighbours``) or lose their flag, then edge-band cells are skipped
    (``ignore_box_edges``) or lose theirs.
    """
    flagged = coded != IGNORE
    seam = flagged & ((coded & SEAM) != 0)
    target = torch.where(seam, 0 if cfg.separate_neighbours else coded - SEAM, coded)
    band = flagged & ((target & EDGE_BAND) != 0)
    target = torch.where(band, IGNORE if cfg.ignore_box_edges else target - EDGE_BAND, target)
    weights = torch.full((NUM_CLASSES,), cfg.defect_weight, device=logits.device)
    weights[0] = cfg.background_weight
    ce = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE)
    if cfg.dice_weight <= 0:
        return ce
    valid = (target != IGNORE).unsqueeze(1)
    clean = torch.where(valid.squeeze(1), target, torch.zeros_like(target))
    probs = torch.softmax(logits, dim=1)[:, 1:] * valid
    onehot = F.one_hot(clean, NUM_CLASSES).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype) * valid
    inter = (probs * onehot).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)
    return ce + cfg.dice_weight * dice.mean()
