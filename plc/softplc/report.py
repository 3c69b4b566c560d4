"""What the soft PLC saw: parts, acknowledgements, misses, mismatches, timeouts, verdicts."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aoi.stats import percentiles

log = logging.getLogger(__name__)


@dataclass
class SimReport:
    """What the soft PLC saw; ``summary()`` gives the issue's counters."""

    parts: int = 0
    acked: int = 0
    missed: int = 0
    mismatched: int = 0
    timeouts: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    station_errors: Counter[str] = field(default_factory=Counter)
    station_heartbeat_lost: int = 0
    link_drops: int = 0
    part_ms: list[float] = field(default_factory=list)
    recipe_change: str = ""
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        log.warning("soft PLC: %s", problem)
        if len(self.problems) < 20:
            self.problems.append(problem)

    def summary(self) -> dict[str, Any]:
        return {
            "parts": self.parts,
            "acked": self.acked,
            "missed": self.missed,
            "mismatched": self.mismatched,
            "timeouts": self.timeouts,
        }

    def details(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "verdicts": dict(self.verdicts),
            "station_errors": dict(self.station_errors),
            "station_heartbeat_lost": self.station_heartbeat_lost,
            "link_drops": self.link_drops,
            "trigger_to_result_ms": percentiles(self.part_ms),
            "recipe_change": self.recipe_change,
        }
