"""The alarm history as the screen lists it: read from the station's persisted alarm log.

Qt-free. The station records alarms where they happen (:mod:`aoi.app.alarms`) into the audit
trail, so a transient fault (a PLC heartbeat lost for 100 ms) is there even if no refresh of the
screen saw it, and the history outlives a restart of the GUI. This reads the newest ``limit``
entries again whenever the log wrote something; "show older" asks for more.
"""

from __future__ import annotations

import logging

from aoi.storage.alarms import AlarmLog as StationAlarms
from aoi.storage.alarms import AlarmRecord
from aoi.storage.db import DB_ERRORS
from ui.logic.health import Level

log = logging.getLogger(__name__)

#: Entries read at first; "show older" adds as many again.
PAGE = 50


#: One alarm as the history lists it: the station's own record (no copy of its fields here).
AlarmEntry = AlarmRecord


def level_of(entry: AlarmEntry) -> Level:
    """The light level an alarm is shown with (the record stores "WARN" or "FAULT")."""
    return Level.WARN if entry.level == "WARN" else Level.FAULT


class AlarmLog:
    """The newest alarms of the station, newest first (empty without a defect log)."""

    def __init__(self, alarms: StationAlarms | None, limit: int = PAGE) -> None:
        self.alarms = alarms
        self.limit = limit
        self._entries: list[AlarmEntry] = []
        self._version = -1

    @property
    def entries(self) -> list[AlarmEntry]:
        return list(self._entries)

    def update(self) -> bool:
        """Read the history again if the log wrote since; True if the entries changed."""
        a = self.alarms
        if a is None or a.version == self._version:
            return False
        version = a.version
        try:
            entries = a.recent(self.limit)
        except DB_ERRORS as err:
            log.warning("alarm history not read: %s", err)
            return False
        self._version = version
        changed = entries != self._entries
        self._entries = entries
        return changed

    def show_older(self) -> bool:
        """List another page of older alarms; True if there were more."""
        had = len(self._entries)
        self.limit += PAGE
        self._version = -1
        self.update()
        return len(self._entries) > had

    def acknowledge(self, alarm_id: int, who: str) -> AlarmEntry | None:
        """Sign the listed alarm ``alarm_id`` as seen (persisted); None if it is not listed or
        was signed before."""
        entry = next((e for e in self._entries if e.id == alarm_id), None)
        if self.alarms is None or entry is None or entry.acked_by:
            return None
        record = self.alarms.acknowledge(entry.id, who)
        self._version = -1
        self.update()
        return record
