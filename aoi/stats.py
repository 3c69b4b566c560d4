"""Cycle statistics: per-stage and whole-cycle percentiles, verdict counts, board accuracy."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aoi.types import STAGES, InspectionResult, Verdict


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of a list of milliseconds (zeros for an empty list)."""
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    a = np.asarray(values, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "max": round(float(a.max()), 3),
    }


@dataclass
class RunStats:
    """Accumulates results of a run; ``summary`` is the JSON the CLI prints."""

    budget_ms: float
    cycle_ms: list[float] = field(default_factory=list)
    stages_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    verdicts: Counter[str] = field(default_factory=Counter)
    over_budget: int = 0
    truth_known: int = 0
    truth_matched: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    last: InspectionResult | None = None
    #: Monotonic seconds of the first and the latest result (throughput, not latency).
    first_s: float = 0.0
    last_s: float = 0.0

    def add(self, r: InspectionResult) -> None:
        self.last = r
        self.last_s = time.monotonic()
        if not self.first_s:
            self.first_s = self.last_s
        self.verdicts[r.verdict.name] += 1
        if r.verdict is Verdict.ERROR:
            self.errors[r.error_kind.value] += 1
        if r.frame_id >= 0:
            self.cycle_ms.append(r.cycle_ms)
            for name, ms in r.stages_ms.items():
                self.stages_ms[name].append(ms)
        if r.over_budget:
            self.over_budget += 1
        if r.truth is not None:
            self.truth_known += 1
            expected = Verdict.NG if r.truth.is_defective else Verdict.OK
            self.truth_matched += int(r.verdict is expected)

    @property
    def cycles(self) -> int:
        return sum(self.verdicts.values())

    @property
    def board_accuracy(self) -> float | None:
        """Share of boards whose OK/NG verdict matches the truth (REVIEW and ERROR count wrong)."""
        if not self.truth_known:
            return None
        return self.truth_matched / self.truth_known

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cycles": self.cycles,
            "verdicts": {v.name: self.verdicts.get(v.name, 0) for v in Verdict},
            "cycle_ms": percentiles(self.cycle_ms),
            "stages_ms": {s: percentiles(v) for s, v in self.stages_ms.items()},
            "over_budget": self.over_budget,
            "budget_ms": self.budget_ms,
        }
        if self.cycles > 1 and self.last_s > self.first_s:
            # Boards answered per second after the first (which carries start-up costs).
            out["boards_per_s"] = round((self.cycles - 1) / (self.last_s - self.first_s), 2)
        if self.errors:
            out["errors"] = dict(self.errors)
        if self.board_accuracy is not None:
            out["board_accuracy"] = round(self.board_accuracy, 4)
        return out
