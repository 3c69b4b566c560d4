"""Small parts of the station's assembly: the sink order, the shift counters, waiting for the end.

Kept beside :mod:`aoi.app.station` (which re-exports them) so that module stays the wiring.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from aoi.config import StationConfig
from aoi.counters import ShiftCounters
from aoi.pipeline import VerdictSink
from aoi.recipe import LoadedRecipe

if TYPE_CHECKING:
    from aoi.app.station import Station


def critical_sinks(journal: VerdictSink | None, plc: VerdictSink | None) -> list[VerdictSink]:
    """The sinks a verdict passes before its cycle ends, in their one order.

    The journal (the defect log) comes before the PLC: a verdict the PLC saw is never lost.
    """
    return [sink for sink in (journal, plc) if sink is not None]


def shift_counters(
    config: StationConfig, loaded: LoadedRecipe, clock: Callable[[], float] | None
) -> ShiftCounters:
    """The shift's counters, with the station config's shift starts and time zone."""
    s = config.storage
    tz = None
    if s.timezone:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(s.timezone)
    extra = {"clock": clock} if clock is not None else {}
    return ShiftCounters(
        loaded.recipe.cycle_budget_ms, shift_starts_h=s.shift_starts_h, tz=tz, **extra
    )


def run_until_done(station: Station, stop: threading.Event, poll_s: float = 0.2) -> None:
    """Wait for the station's cycle to end, stopping it once ``stop`` is set (by a signal)."""
    asked = False
    while not station.wait(poll_s):
        if stop.is_set() and not asked:
            asked = True
            station.stop()
