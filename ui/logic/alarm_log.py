"""The alarm history: every alarm the screen showed, when it came and went, who acknowledged it.

Qt-free. The health lights say what is wrong now; a transient fault (a PLC heartbeat lost for two
seconds) is gone before anyone looks, so each refresh's alarms are compared with the last ones and
what appeared or cleared is logged with its time. Kept in memory for the session (the audit
trail records the acknowledgements).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from ui.logic.health import Alarm, Level

log = logging.getLogger(__name__)

#: Entries kept; the oldest go first.
HISTORY_LENGTH = 500


@dataclass(frozen=True)
class AlarmEntry:
    raised_at: datetime
    level: Level
    source: str
    title: str
    cause: str
    cleared_at: datetime | None = None
    acked_by: str = ""
    acked_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.source, self.title

    @property
    def text(self) -> str:
        return f"{self.source}: {self.title}"


class AlarmLog:
    """Alarms as they came and went, newest first."""

    def __init__(self, length: int = HISTORY_LENGTH) -> None:
        self._entries: deque[AlarmEntry] = deque(maxlen=length)

    @property
    def entries(self) -> list[AlarmEntry]:
        return list(self._entries)

    def update(self, alarms: list[Alarm], now: datetime) -> bool:
        """Log the alarms that appeared and close the ones that cleared; True if any did."""
        current = {(a.source, a.title): a for a in alarms if a.level >= Level.WARN}
        changed = False
        active = set()
        for i, e in enumerate(self._entries):
            if e.cleared_at is not None:
                continue
            if e.key in current:
                active.add(e.key)
            else:
                self._entries[i] = dataclasses.replace(e, cleared_at=now)
                changed = True
        for key, a in current.items():
            if key not in active:
                self._entries.appendleft(AlarmEntry(now, a.level, a.source, a.title, a.cause))
                log.info("alarm: %s: %s (%s)", a.source, a.title, a.cause)
                changed = True
        return changed

    def acknowledge(self, index: int, who: str, now: datetime) -> AlarmEntry | None:
        """Sign entry ``index`` (of :attr:`entries`) as seen; None if out of range or done."""
        if not 0 <= index < len(self._entries) or self._entries[index].acked_by:
            return None
        self._entries[index] = dataclasses.replace(self._entries[index], acked_by=who, acked_at=now)
        return self._entries[index]
