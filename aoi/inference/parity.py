"""Parity: does a backend give the probabilities ONNX Runtime gives, within its precision?

ONNX Runtime on the CPU is the numerical reference (it runs the ONNX graph in fp32 as written).
Outputs are softmax probabilities in [0, 1], so tolerances are absolute:

- fp32: max |difference| <= 1e-3. Same arithmetic, different kernels and summation order (and
  TF32 is switched off for fp32 engines); differences are rounding noise, ~1e-6 typically.
- fp16: max <= 1e-2. Half precision keeps ~3 decimal digits; errors through a few dozen layers
  and a softmax stay within one percent of probability.
- int8: judged on what the station uses. Activations are quantised to 256 levels per tensor
  with entropy-calibrated scales, so a pixel near a decision boundary can move by a tenth or
  more while the defect map does not change: mean |difference| <= 0.01, the most probable class
  agrees in >= 99 % of output cells, and no probability moves by more than 0.25.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from aoi.inference.base import InferenceBackend
from aoi.inference.tensorrt.plan import dims_text
from aoi.types import ClassMaps

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tolerance:
    max_abs: float
    mean_abs: float
    #: Share of output cells whose most probable class must agree (0 disables the check).
    min_argmax_agreement: float


TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-3, mean_abs=1e-3, min_argmax_agreement=0.0),
    "fp16": Tolerance(max_abs=1e-2, mean_abs=1e-2, min_argmax_agreement=0.0),
    "int8": Tolerance(max_abs=0.25, mean_abs=1e-2, min_argmax_agreement=0.99),
}


@dataclass(frozen=True)
class ParityReport:
    precision: str
    batches: int
    max_abs: float
    mean_abs: float
    argmax_agreement: float
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    def text(self) -> str:
        verdict = "PASS" if self.passed else "FAIL: " + "; ".join(self.problems)
        return (
            f"parity {self.precision} over {self.batches} batch(es): max |diff| "
            f"{self.max_abs:.2e}, mean |diff| {self.mean_abs:.2e}, class agreement "
            f"{self.argmax_agreement:.4%} -> {verdict}"
        )


def _as_class_maps(output: np.ndarray | ClassMaps) -> ClassMaps:
    if isinstance(output, ClassMaps):
        return output
    return ClassMaps(output.argmax(axis=1).astype(np.uint8), output.max(axis=1))


def _comparable(
    reference: np.ndarray | ClassMaps, candidate: np.ndarray | ClassMaps
) -> tuple[np.ndarray, np.ndarray]:
    """Both outputs as full maps or, where either is reduced, both winning scores [N, 1, H, W]."""
    if isinstance(reference, np.ndarray) and isinstance(candidate, np.ndarray):
        return reference, candidate
    a, b = _as_class_maps(reference), _as_class_maps(candidate)
    return a.scores[:, None], b.scores[:, None]


def _classes(output: np.ndarray | ClassMaps) -> np.ndarray:
    return output.classes if isinstance(output, ClassMaps) else output.argmax(axis=1)


def compare(
    pairs: Iterable[tuple[np.ndarray | ClassMaps, np.ndarray | ClassMaps]], precision: str
) -> ParityReport:
    """Compare (reference, candidate) output pairs against the precision's tolerance.

    Full probability maps are compared cell by cell and class; where either side is reduced
    (:class:`ClassMaps`, the TensorRT engine's output) the winning class's score is compared and
    the classes must agree.
    """
    tol = TOLERANCES[precision]
    problems: list[str] = []
    worst, total, cells, agree, count, batches = 0.0, 0.0, 0, 0, 0, 0
    for ref_out, cand_out in pairs:
        batches += 1
        reference, candidate = _comparable(ref_out, cand_out)
        if reference.shape != candidate.shape:
            problems.append(
                f"batch {batches}: shape {dims_text(candidate.shape)} must be "
                f"{dims_text(reference.shape)}"
            )
            continue
        diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
        if not np.isfinite(diff).all():
            problems.append(f"batch {batches}: non-finite outputs")
            continue
        worst = max(worst, float(diff.max()))
        total += float(diff.sum())
        count += diff.size
        same = _classes(ref_out) == _classes(cand_out)
        agree += int(same.sum())
        cells += same.size
    mean = total / count if count else 0.0
    agreement = agree / cells if cells else 0.0
    if batches == 0:
        problems.append("no batch compared")
    if worst > tol.max_abs:
        problems.append(f"max |diff| {worst:.2e} must be <= {tol.max_abs:.0e}")
    if mean > tol.mean_abs:
        problems.append(f"mean |diff| {mean:.2e} must be <= {tol.mean_abs:.0e}")
    if cells and agreement < tol.min_argmax_agreement:
        problems.append(
            f"class agreement {agreement:.4%} must be >= {tol.min_argmax_agreement:.2%}"
        )
    return ParityReport(precision, batches, worst, mean, agreement, tuple(problems))


def run_parity(
    reference: InferenceBackend,
    candidate: InferenceBackend,
    batches: Iterable[np.ndarray],
    precision: str,
) -> ParityReport:
    """Run both (entered) backends on the same batches and compare their outputs."""

    def pairs() -> Iterable[tuple[np.ndarray | ClassMaps, np.ndarray | ClassMaps]]:
        for batch in batches:
            yield reference.predict(batch), candidate.predict(batch)

    report = compare(pairs(), precision)
    log.info("%s vs %s: %s", candidate.name, reference.name, report.text())
    return report
