"""The shift's verdict counts, first-pass yield and a rolling window of cycle times.

:class:`ShiftCounters` is updated on the cycle's thread with a few integer additions under a
lock, and read as a frozen :class:`CounterSnapshot`, so a screen that drops display frames still
shows exact counts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

import numpy as np

from aoi.types import InspectionResult, Verdict


def shift_start(t_local: datetime, shift_starts_h: Sequence[int]) -> tuple[datetime, int]:
    """Start (local, on the hour) and index of the shift that ``t_local`` falls in."""
    h = t_local.hour
    index = max((i for i, s in enumerate(shift_starts_h) if s <= h), default=None)
    day = t_local.replace(minute=0, second=0, microsecond=0)
    if index is None:  # before the first start: the last shift of the day before
        index, day = len(shift_starts_h) - 1, day - timedelta(days=1)
    return day.replace(hour=shift_starts_h[index]), index


def shift_label(start: datetime, index: int) -> str:
    """``YYYY-MM-DD S<n> (HH:00)``, as ``aoi report`` names shifts."""
    return f"{start.date()} S{index + 1} ({start.hour:02d}:00)"


@dataclass(frozen=True)
class CounterSnapshot:
    """What the operator screen shows about the shift and the recent cycles."""

    shift: str
    inspected: int
    ok: int
    ng: int
    review: int
    error: int
    over_budget: int
    budget_ms: float
    #: The most recent cycle times (oldest first) and whether each was over budget.
    recent_ms: tuple[float, ...]
    recent_over: tuple[bool, ...]
    #: Percentiles over the rolling window (``window`` boards with a frame); None before any.
    p50_ms: float | None
    p99_ms: float | None
    window: int
    #: This shift per recipe: (recipe name, boards inspected, boards OK), most boards first.
    by_recipe: tuple[tuple[str, int, int], ...] = ()

    @property
    def fpy(self) -> float | None:
        """First-pass yield: OK boards / boards inspected (REVIEW and ERROR did not pass)."""
        return self.ok / self.inspected if self.inspected else None


class ShiftCounters:
    """Verdict counts of the running shift and a rolling window of cycle times; thread-safe."""

    def __init__(
        self,
        budget_ms: float,
        *,
        shift_starts_h: Sequence[int] = (6, 14, 22),
        tz: tzinfo | None = None,
        window: int = 1000,
        chart_points: int = 200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.budget_ms = budget_ms
        self.shift_starts_h = tuple(shift_starts_h)
        self.tz = tz
        self._clock = clock
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(Verdict, 0)
        self._over = 0
        #: Boards and OK boards per recipe this shift, as inspected since the station started
        #: (a product change mid-shift splits them; counts seeded from the database are not).
        self._recipes: dict[str, list[int]] = {}
        self._window: deque[float] = deque(maxlen=window)
        self._chart: deque[tuple[float, bool]] = deque(maxlen=chart_points)
        self._shift_start, self._shift = self.current_shift()

    def current_shift(self) -> tuple[datetime, str]:
        """Local start and label of the shift running now."""
        now = datetime.fromtimestamp(self._clock(), self.tz)
        if self.tz is None:
            now = now.astimezone()
        start, index = shift_start(now, self.shift_starts_h)
        return start, shift_label(start, index)

    @property
    def shift_started(self) -> datetime:
        return self._shift_start

    def seed(
        self,
        counts: dict[Verdict, int],
        *,
        over_budget: int = 0,
        by_recipe: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        """Add boards of this shift inspected before the station started (from the database):
        verdicts, boards over the cycle budget, and (boards, OK) per recipe, one basis for all."""
        with self._lock:
            for verdict, n in counts.items():
                self._counts[verdict] += n
            self._over += over_budget
            for name, (boards, ok) in (by_recipe or {}).items():
                per = self._recipes.setdefault(name, [0, 0])
                per[0] += boards
                per[1] += ok

    def _roll_shift(self) -> None:
        start, label = self.current_shift()
        if label != self._shift:
            self._shift_start, self._shift = start, label
            self._counts = dict.fromkeys(Verdict, 0)
            self._over = 0
            self._recipes = {}

    def reset(self) -> CounterSnapshot:
        """Zero the shift's verdict counts (the cycle-time window stays); returns what they
        were, for the audit trail."""
        before = self.snapshot()
        with self._lock:
            self._counts = dict.fromkeys(Verdict, 0)
            self._over = 0
            self._recipes = {}
        return before

    def add(self, result: InspectionResult) -> None:
        with self._lock:
            self._roll_shift()
            self._counts[result.verdict] += 1
            self._over += int(result.over_budget)
            per = self._recipes.setdefault(result.recipe_name, [0, 0])
            per[0] += 1
            per[1] += int(result.verdict is Verdict.OK)
            if result.frame_id >= 0:  # a camera timeout has no cycle time worth charting
                self._window.append(result.cycle_ms)
                self._chart.append((result.cycle_ms, result.over_budget))

    def snapshot(self) -> CounterSnapshot:
        with self._lock:
            self._roll_shift()
            counts = dict(self._counts)
            window = np.fromiter(self._window, dtype=np.float64, count=len(self._window))
            chart = tuple(self._chart)
            over, shift = self._over, self._shift
            recipes = sorted(
                ((n, b, k) for n, (b, k) in self._recipes.items()), key=lambda r: -r[1]
            )
        p50 = p99 = None
        if window.size:
            p50, p99 = (float(v) for v in np.percentile(window, [50, 99]))
        return CounterSnapshot(
            shift=shift,
            inspected=sum(counts.values()),
            ok=counts[Verdict.OK],
            ng=counts[Verdict.NG],
            review=counts[Verdict.REVIEW],
            error=counts[Verdict.ERROR],
            over_budget=over,
            budget_ms=self.budget_ms,
            recent_ms=tuple(ms for ms, _ in chart),
            recent_over=tuple(o for _, o in chart),
            p50_ms=p50,
            p99_ms=p99,
            window=int(window.size),
            by_recipe=tuple(recipes),
        )
