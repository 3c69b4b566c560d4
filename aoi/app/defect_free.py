"""False calls on defect-free boards: golden templates inspected against moved, noisy copies.

Each board is a DeepPCB golden template of a split seen by the camera again: every
:data:`IDENTITY_EVERY`-th one exactly as stored (the template against itself), the others moved
by up to ``max_shift_px`` (any direction) and rotated by up to ``max_rotation_deg``, with the
frame's border replicated (what lies outside a camera frame is unknown) and Gaussian noise
added. The frames carry no template of their own, so the station's registration aligns them to
the golden template first, as in the cycle. A board with any defect at the recipe's thresholds
is a false call; candidates only in a review band and failed registrations are counted apart.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from aoi.inference.base import InferenceBackend
from aoi.pipeline import Pipeline
from aoi.pixels import to_mono8
from aoi.recipe import LoadedRecipe
from aoi.types import Frame, InspectionResult, Verdict

#: Every this many boards, one is the template itself, unmoved and noise-free.
IDENTITY_EVERY = 10


@dataclass(frozen=True)
class Disturbance:
    """How far the defect-free copies are moved and how noisy they are."""

    max_shift_px: float = 3.0
    max_rotation_deg: float = 1.0
    noise_sigma: tuple[float, float] = (1.0, 5.0)
    seed: int = 20240


def disturbed_copy(
    template: np.ndarray, index: int, how: Disturbance
) -> tuple[np.ndarray, dict[str, float]]:
    """Board ``index``'s camera image of ``template`` and the motion applied to it."""
    if index % IDENTITY_EVERY == 0:
        return template.copy(), {"dx": 0.0, "dy": 0.0, "deg": 0.0, "sigma": 0.0}
    rng = np.random.default_rng([how.seed, index])
    radius = how.max_shift_px * math.sqrt(rng.random())  # uniform over the disc
    direction = rng.uniform(0.0, 2.0 * math.pi)
    dx, dy = radius * math.cos(direction), radius * math.sin(direction)
    deg = float(rng.uniform(-how.max_rotation_deg, how.max_rotation_deg))
    sigma = float(rng.uniform(*how.noise_sigma))
    h, w = template.shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), deg, 1.0)
    matrix[:, 2] += (dx, dy)
    moved = cv2.warpAffine(
        template, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    noisy = moved.astype(np.float32) + rng.normal(0.0, sigma, size=moved.shape)
    image = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    return image, {"dx": dx, "dy": dy, "deg": deg, "sigma": sigma}


@dataclass
class DefectFreeReport:
    """Counts over the defect-free boards; ``false_call_rate`` is NG boards / boards."""

    boards: int = 0
    ok: int = 0
    false_calls: int = 0
    review_only: int = 0
    errors: int = 0
    false_defects_by_class: Counter[str] = field(default_factory=Counter)
    max_false_score: float = 0.0
    worst: list[tuple[str, float]] = field(default_factory=list)

    def add(self, name: str, result: InspectionResult) -> None:
        self.boards += 1
        if result.verdict == Verdict.ERROR:
            self.errors += 1
            return
        if result.defects:
            self.false_calls += 1
            self.false_defects_by_class.update(result.defects.class_names)
            top = float(result.defects.scores.max())
            self.max_false_score = max(self.max_false_score, top)
            self.worst.append((name, top))
        elif result.review_defects:
            self.review_only += 1
        else:
            self.ok += 1

    def as_json(self) -> dict[str, object]:
        n = max(self.boards, 1)
        return {
            "boards": self.boards,
            "ok": self.ok,
            "false_calls": self.false_calls,
            "false_call_rate": self.false_calls / n,
            "review_only": self.review_only,
            "review_rate": self.review_only / n,
            "errors": self.errors,
            "error_rate": self.errors / n,
            "false_defects_by_class": dict(sorted(self.false_defects_by_class.items())),
            "max_false_score": self.max_false_score,
            "worst": [name for name, _ in sorted(self.worst, key=lambda t: -t[1])[:10]],
        }


def run_defect_free(
    loaded: LoadedRecipe,
    backend: InferenceBackend,
    templates: Sequence[Path],
    count: int,
    how: Disturbance | None = None,
    progress: Callable[[int, int], None] | None = None,
    read: Callable[[Path], np.ndarray] | None = None,
) -> DefectFreeReport:
    """Inspect ``count`` defect-free boards made from ``templates`` (round robin)."""
    how = how or Disturbance()
    if not templates:
        msg = "the defect-free check needs at least one template"
        raise ValueError(msg)
    reader = read or (lambda p: cv2.imread(str(p), cv2.IMREAD_UNCHANGED))
    report = DefectFreeReport()
    cache: dict[int, np.ndarray] = {}
    for i in range(count):
        k = i % len(templates)
        if k not in cache:
            cache[k] = to_mono8(reader(templates[k]))
        template = cache[k]
        image, _motion = disturbed_copy(template, i, how)
        # A pipeline per golden board: the registrar prepares that template's pyramid.
        pipeline = Pipeline(loaded, backend, template=template)
        name = f"{templates[k].stem}#{i}"
        frame = Frame(image, i, time.perf_counter_ns(), "defect-free", name=name)
        report.add(name, pipeline.inspect(frame))
        if progress is not None:
            progress(i + 1, count)
    return report
