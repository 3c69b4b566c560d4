"""The station's only cycle loop, on a worker thread, and what a screen counts about it.

Qt-free and generic: :class:`aoi.app.station.Station` (what ``aoi run``, ``aoi bench`` and
``aoi gui`` open) drives it through :meth:`StationRunner.start` and :meth:`StationRunner.stop`,
which never wait for the cycle. The runner owns the cycle's thread; the recipe-bound parts
(pipeline and source) come in a :class:`Rig` that the runner can swap between two parts, so a
recipe change never interrupts a board.

:class:`ShiftCounters` keeps the shift's verdict counts, first-pass yield and a rolling window of
cycle times. It is updated on the cycle's thread with a few integer additions under a lock, and
read as a frozen :class:`CounterSnapshot`, so a screen that drops display frames still shows
exact counts.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

import numpy as np

from aoi.errors import AoiError
from aoi.pipeline import Pipeline, TriggerSource, run_cycles
from aoi.sources.base import ImageSource
from aoi.types import InspectionResult, Trigger, Verdict

log = logging.getLogger(__name__)


# -- shift counters -------------------------------------------------------------------------


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

    def seed(self, counts: dict[Verdict, int]) -> None:
        """Add boards of this shift inspected before the station started (from the database)."""
        with self._lock:
            for verdict, n in counts.items():
                self._counts[verdict] += n

    def _roll_shift(self) -> None:
        start, label = self.current_shift()
        if label != self._shift:
            self._shift_start, self._shift = start, label
            self._counts = dict.fromkeys(Verdict, 0)
            self._over = 0

    def add(self, result: InspectionResult) -> None:
        with self._lock:
            self._roll_shift()
            self._counts[result.verdict] += 1
            self._over += int(result.over_budget)
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
        )


# -- the runner -----------------------------------------------------------------------------


class Rig(Protocol):
    """The recipe-bound part of a running station: a warmed-up pipeline and an open source."""

    pipeline: Pipeline
    source: ImageSource

    def close(self) -> None: ...


class RunState(enum.Enum):
    STOPPED = "stopped"
    RUNNING = "running"
    STOPPING = "stopping"
    #: The cycle's thread ended on an error it cannot inspect past (a camera that is gone).
    FAULT = "fault"


class _DrainingTriggers:
    """Passes triggers on; once draining, the first wait that brings none ends the run.

    The station goes offline first (READY drops), so a part the PLC triggered just before is
    still inspected and answered, and no trigger is left unanswered in the queue. A run of
    ``last`` parts goes offline as soon as it takes its last trigger (``on_last``): READY never
    rises again after the last part's result, so the PLC cannot slip in a part the run will
    not inspect (it would be answered ERROR / STATION_STOPPING at shutdown).
    """

    def __init__(self, inner: TriggerSource, interrupt: threading.Event) -> None:
        self.inner = inner
        self.interrupt = interrupt
        self.draining = False
        self.taken = 0
        self.last: int | None = None
        self.on_last: Callable[[], None] | None = None
        self.waited_at = time.monotonic()  # an idle station's heartbeat (aoi.app.service)

    def wait_trigger(self, timeout_s: float) -> Trigger | None:
        trigger = self.inner.wait_trigger(timeout_s)
        self.waited_at = time.monotonic()
        if trigger is None:
            if self.draining:
                self.interrupt.set()
            return None
        self.taken += 1
        if self.taken == self.last and self.on_last is not None:
            self.on_last()
        return trigger


class StationRunner:
    """Runs :func:`aoi.pipeline.run_cycles` on a worker thread with start, stop and rig swaps.

    ``set_online(bool)`` is told when the station starts and stops taking parts (the PLC link's
    READY/ONLINE); ``on_result`` is called on the cycle's thread after each board (keep it short).
    """

    def __init__(
        self,
        rig: Rig,
        counters: ShiftCounters,
        *,
        triggers: TriggerSource | None = None,
        set_online: Callable[[bool], None] | None = None,
        on_result: Callable[[InspectionResult], None] | None = None,
        grab_timeout_s: float = 2.0,
    ) -> None:
        self.rig = rig
        self.counters = counters
        self.grab_timeout_s = grab_timeout_s
        self._set_online = set_online
        self._on_result = on_result
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interrupt = threading.Event()
        self._triggers = _DrainingTriggers(triggers, self._interrupt) if triggers else None
        self._thread: threading.Thread | None = None
        self._pending: Rig | None = None
        self._state = RunState.STOPPED
        self._fault = ""
        self._done = 0
        self._target: int | None = None
        self._beat = time.monotonic()
        self.last_result: InspectionResult | None = None
        self.last_error_result: InspectionResult | None = None

    # -- commands (any thread; none waits for the cycle) ------------------------------------

    @property
    def state(self) -> RunState:
        return self._state

    @property
    def fault(self) -> str:
        return self._fault

    @property
    def heartbeat(self) -> float:
        """Monotonic time of the cycle's last sign of life: a board done, a trigger wait over."""
        return max(self._beat, self._triggers.waited_at if self._triggers else 0.0)

    @property
    def cycles_done(self) -> int:
        """Boards inspected since the last start."""
        return self._done

    def start(self, cycles: int | None = None) -> bool:
        """Start inspecting (``cycles`` boards, or until stopped); False if it already runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._stop.clear()
            self._interrupt.clear()
            if self._triggers is not None:
                self._triggers.draining = False
                self._triggers.taken, self._triggers.last = 0, cycles
                self._triggers.on_last = self._offline
            self._fault = ""
            self._done = 0
            self._target = cycles
            self._beat = time.monotonic()
            self._state = RunState.RUNNING
            self._thread = threading.Thread(target=self._loop, name="aoi-cycle", daemon=True)
            self._thread.start()
        if self._set_online is not None:
            self._set_online(True)
        return True

    def stop(self) -> None:
        """Stop after the board in flight; returns at once (``wait`` waits for the end)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                return
            self._state = RunState.STOPPING
            self._stop.set()
        if self._set_online is not None:
            self._set_online(False)  # READY drops: the PLC starts no new part
        if self._triggers is not None:
            self._triggers.draining = True
        else:
            self._interrupt.set()

    def _offline(self) -> None:
        if self._set_online is not None:
            self._set_online(False)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the cycle's thread to end; True if it has (or never ran)."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def switch_rig(self, rig: Rig) -> None:
        """Inspect with ``rig`` from the next board on; the current rig closes after its board.

        While stopped the swap is immediate. The caller built and warmed ``rig`` up, so a recipe
        that fails to load never reaches the runner.
        """
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            if running:
                if self._pending is not None:
                    self._pending.close()
                self._pending = rig
                self._interrupt.set()
                return
            old, self.rig = self.rig, rig
        old.close()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop, wait for the cycle's thread, and close a rig still waiting to be swapped in."""
        self.stop()
        if not self.wait(timeout_s):
            log.error("the cycle did not stop within %.0f s", timeout_s)
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            pending.close()

    # -- the cycle's thread ----------------------------------------------------------------

    def _count(self, result: InspectionResult) -> None:
        self._beat = time.monotonic()
        self._done += 1
        self.last_result = result
        if result.verdict is Verdict.ERROR:
            self.last_error_result = result
        self.counters.add(result)
        if self._on_result is not None:
            self._on_result(result)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                remaining = None if self._target is None else self._target - self._done
                if remaining is not None and remaining <= 0:
                    break
                self._interrupt.clear()
                if self._stop.is_set():
                    break
                run_cycles(
                    self.rig.pipeline,
                    self.rig.source,
                    cycles=remaining,
                    grab_timeout_s=self.grab_timeout_s,
                    stop=self._interrupt,
                    on_result=self._count,
                    triggers=self._triggers,
                )
                with self._lock:
                    pending, self._pending = self._pending, None
                if pending is None:
                    break  # stopped, done, or the source ran out
                old, self.rig = self.rig, pending
                old.close()
        except AoiError as err:
            log.exception("the cycle stopped on an error")
            self._fault = str(err)
        finally:
            with self._lock:
                self._state = RunState.FAULT if self._fault else RunState.STOPPED
            if self._set_online is not None:
                self._set_online(False)
