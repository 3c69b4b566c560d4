"""The station's only cycle loop, on a worker thread, and what a screen counts about it.

Qt-free and generic: :class:`aoi.app.station.Station` (what ``aoi run``, ``aoi bench`` and
``aoi gui`` open) drives it through :meth:`StationRunner.start` and :meth:`StationRunner.stop`,
which never wait for the cycle. The runner owns the cycle's thread; the recipe-bound parts
(pipeline and source) come in a :class:`Rig` that the runner can swap between two parts, so a
recipe change never interrupts a board. The shift's counters it updates live in
:mod:`aoi.counters` (re-exported here).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from aoi.counters import CounterSnapshot, ShiftCounters, shift_label, shift_start
from aoi.errors import AoiError
from aoi.pipeline import UNEXPECTED, Pipeline, TriggerSource, internal_message, run_cycles
from aoi.pipelined import run_pipelined
from aoi.sources.base import ImageSource
from aoi.types import ErrorKind, InspectionResult, Trigger, Verdict

log = logging.getLogger(__name__)

__all__ = [
    "MAX_INTERNAL_ERRORS",
    "CounterSnapshot",
    "Rig",
    "RunState",
    "ShiftCounters",
    "StationRunner",
    "shift_label",
    "shift_start",
]

#: Boards in a row answered ERROR by an unexpected exception before the station stops itself.
MAX_INTERNAL_ERRORS = 3


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
        pipelined: bool = False,
    ) -> None:
        self.rig = rig
        # One trigger is one result: with triggers the boards are never overlapped.
        self._pipelined = pipelined and triggers is None
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
        self._internal = 0  # boards in a row answered ERROR by an unexpected exception
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
            self._internal = 0
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
        self._internal = self._internal + 1 if result.error_kind is ErrorKind.INTERNAL else 0
        if self._internal >= MAX_INTERNAL_ERRORS and not self._fault:
            # A bug that fails every board: stop taking parts (READY drops, `aoi run` exits 2
            # and its service restarts) rather than answer ERROR forever.
            self._fault = f"{self._internal} boards in a row: {result.error}"
            log.error("the station stops: %s", self._fault)
            self._stop.set()
            self._interrupt.set()
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
                loop = run_pipelined if self._pipelined else run_cycles
                extra = {} if self._pipelined else {"triggers": self._triggers}
                loop(
                    self.rig.pipeline,
                    self.rig.source,
                    cycles=remaining,
                    grab_timeout_s=self.grab_timeout_s,
                    stop=self._interrupt,
                    on_result=self._count,
                    **extra,
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
        except UNEXPECTED as err:
            log.exception("the cycle stopped on an unexpected error")
            self._fault = internal_message(err)
        finally:
            with self._lock:
                self._state = RunState.FAULT if self._fault else RunState.STOPPED
            if self._set_online is not None:
                self._set_online(False)
