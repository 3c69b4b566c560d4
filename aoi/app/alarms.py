"""What raises and clears the station's alarms: the PLC link, storage, the camera, the engine.

Qt-free. Each source reports its own events as they happen (the link's thread, storage's writer,
the cycle's result hook) into one :class:`~aoi.storage.alarms.AlarmLog`, which writes them to the
audit trail; the screen only reads the history. The titles are the words of the health lights,
so the history reads like the lights did.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING

from aoi.storage.alarms import AlarmLog
from aoi.types import ErrorKind, InspectionResult
from plc.events import ErrorCleared, Event, FaultCleared, FaultRaised, LinkStateChanged
from plc.protocol import ERROR_TEXT, ErrorCode

if TYPE_CHECKING:
    from aoi.app.station import Station

log = logging.getLogger(__name__)

#: Boards the engine's speed is judged over, and the share over budget that is "too slow"
#: (the engine light's rule).
SPEED_WINDOW = 100
OVER_BUDGET_WARN = 0.01

CAMERA_TITLES = {
    ErrorKind.CAMERA_LOST: "Camera lost",
    ErrorKind.CAMERA_TIMEOUT: "No image from the camera",
    ErrorKind.BAD_FRAME: "Unusable image",
}
ENGINE_ERRORS = frozenset(ErrorKind) - set(CAMERA_TITLES) - {ErrorKind.NONE}


def plc_title(code: ErrorCode) -> str:
    if code is ErrorCode.PLC_HEARTBEAT_LOST:
        return "PLC not answering"
    return f"Error {code.name.replace('_', ' ').lower()}"


class AlarmFeed:
    """Turns what the station's parts report into raised and cleared alarms."""

    def __init__(self, alarms: AlarmLog) -> None:
        self.alarms = alarms
        self._over: deque[bool] = deque(maxlen=SPEED_WINDOW)

    def plc_event(self, event: Event) -> None:
        """The PLC link's events (its thread): faults, their end, the link lost and back."""
        a = self.alarms
        if isinstance(event, FaultRaised):
            cause = f"{ERROR_TEXT.get(event.code, event.code.name)}: {event.message}"
            a.raise_alarm("PLC", event.code.name, plc_title(event.code), cause)
        elif isinstance(event, FaultCleared | ErrorCleared):
            a.clear_alarm("PLC", event.code.name)
        elif isinstance(event, LinkStateChanged):
            lost = event.new == "down" or (event.new == "listening" and event.old == "up")
            if lost:
                a.raise_alarm("PLC", "LINK", "PLC link lost", event.detail)
            elif event.new in ("up", "closed"):
                a.clear_alarm("PLC", "LINK")

    def storage_alarm(self, key: str, text: str | None) -> None:
        """Storage's alarms (the writer's or the archive's thread)."""
        if text is None:
            self.alarms.clear_alarm("Database", key)
        else:
            self.alarms.raise_alarm("Database", key, text, text)

    def result(self, r: InspectionResult) -> None:
        """Each board's result (the cycle's thread): the camera and the engine."""
        a = self.alarms
        kind = r.error_kind
        for k, title in CAMERA_TITLES.items():
            if kind is k:
                a.raise_alarm("Camera", k.name, title, r.error)
            elif kind not in CAMERA_TITLES:
                a.clear_alarm("Camera", k.name)  # an image came
        if kind in ENGINE_ERRORS:
            a.raise_alarm("Engine", "NOT_INSPECTED", "Board not inspected", r.error, level="WARN")
        elif kind is ErrorKind.NONE:
            a.clear_alarm("Engine", "NOT_INSPECTED")
            self._over.append(r.over_budget)
            share = sum(self._over) / len(self._over)
            if share > OVER_BUDGET_WARN and len(self._over) >= SPEED_WINDOW // 5:
                cause = f"{sum(self._over)} of the last {len(self._over)} boards over budget"
                a.raise_alarm("Engine", "TOO_SLOW", "Too slow", cause, level="WARN")
            elif share <= OVER_BUDGET_WARN:
                a.clear_alarm("Engine", "TOO_SLOW")


def open_alarms(
    stack: ExitStack, station: Station, result_hooks: list[Callable[[InspectionResult], None]]
) -> AlarmLog | None:
    """The station's alarm history, fed by its PLC link, storage and results (``result_hooks``
    gets the feed's); None without a defect log; closed by ``stack``."""
    if station.storage is None:
        return None
    alarms = stack.enter_context(AlarmLog(station.storage.db, station.config.station_id))
    feed = AlarmFeed(alarms)
    station.storage.health.listener = feed.storage_alarm
    stack.callback(setattr, station.storage.health, "listener", None)
    if station.plc is not None:
        station.plc.link.on_event = feed.plc_event
    result_hooks.append(feed.result)
    return alarms
