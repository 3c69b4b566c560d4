"""The station's alarm history: each alarm as it was raised and cleared, and who acknowledged it.

Qt-free. Alarms are events at their source (a PLC fault, a lost link, a storage alarm, a lost
camera), not samples of the health lights: a heartbeat lost for 100 ms between two refreshes of
the screen is still recorded. Each event is a row of the audit trail (``who = "station"``,
``what = "alarm.raised"`` / ``"alarm.cleared"``; an acknowledgement is ``"alarm.acknowledged"``
by the person who signed it), so the history survives a restart of the GUI and reads beside the
other changes in ``aoi audit``. A clear and an acknowledgement name the raise they belong to by
its audit row id (``old_value``).

Raising and clearing never block the caller (the PLC link's thread calls them): the rows are
written by a small writer thread; :meth:`AlarmLog.flush` waits for it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy import select

from aoi.storage.db import DB_ERRORS, Database
from aoi.storage.tables import AuditEvent

log = logging.getLogger(__name__)

RAISED, CLEARED, ACKED = "alarm.raised", "alarm.cleared", "alarm.acknowledged"
WHO = "station"
#: What a clear written at start says about an alarm the last run left open.
RESTART_NOTE = "(open when the station last stopped)"


@dataclass(frozen=True)
class AlarmRecord:
    """One alarm of the history, as the screen lists it."""

    id: int
    raised_at: datetime
    level: str  # "FAULT" or "WARN"
    source: str
    title: str
    cause: str
    cleared_at: datetime | None = None
    acked_by: str = ""
    acked_at: datetime | None = None

    @property
    def text(self) -> str:
        return f"{self.source}: {self.title}"


@dataclass(frozen=True)
class _Raise:
    key: tuple[str, str]
    at: datetime
    level: str
    source: str
    title: str
    cause: str


@dataclass(frozen=True)
class _Clear:
    key: tuple[str, str]
    at: datetime


#: Back-off of an alarm write the database refused (seconds).
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0


class AlarmLog:
    """Raise and clear alarms by ``(source, key)``; a context manager (the writer thread)."""

    def __init__(self, db: Database, station_id: str = "") -> None:
        self.db = db
        self.station_id = station_id
        #: Increases after every row written: a screen re-reads the history when it changed.
        self.version = 0
        self._active: set[tuple[str, str]] = set()
        #: Told of each raise and clear on the writer's thread (the plant's publishers, issue 17):
        #: ``(raised, source, key, title, cause, at)``.
        self.listeners: list[Callable[[bool, str, str, str, str, datetime], None]] = []
        self._raised_ids: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Raise | _Clear | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> AlarmLog:
        self._close_left_open()
        self._thread = threading.Thread(target=self._write_loop, name="alarm-log", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(10)

    # -- the sources' side (any thread, never blocks) ---------------------------------------

    def raise_alarm(
        self, source: str, key: str, title: str, cause: str = "", *, level: str = "FAULT"
    ) -> None:
        """Record that an alarm began (nothing if it is already up)."""
        k = (source, key)
        with self._lock:
            if k in self._active or self._thread is None:
                return
            self._active.add(k)
        log.info("alarm raised: %s: %s (%s)", source, title, cause)
        self._queue.put(_Raise(k, datetime.now(UTC), level, source, title, cause))

    def clear_alarm(self, source: str, key: str) -> None:
        """Record that an alarm is over (nothing if it is not up)."""
        k = (source, key)
        with self._lock:
            if k not in self._active or self._thread is None:
                return
            self._active.discard(k)
        log.info("alarm cleared: %s %s", source, key)
        self._queue.put(_Clear(k, datetime.now(UTC)))

    def is_active(self, source: str, key: str) -> bool:
        with self._lock:
            return (source, key) in self._active

    def flush(self) -> None:
        """Wait until every alarm raised or cleared so far is written."""
        if self._thread is not None:
            self._queue.join()

    # -- the screen's side -------------------------------------------------------------------

    def recent(self, limit: int = 50) -> list[AlarmRecord]:
        """The newest ``limit`` alarms of this station, newest first, with clear and sign-off."""
        with self.db.session() as s:
            raised = list(
                s.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.what == RAISED, AuditEvent.station_id == self.station_id)
                    .order_by(AuditEvent.id.desc())
                    .limit(limit)
                )
            )
            ids = [str(e.id) for e in raised]
            follow = list(
                s.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.what.in_((CLEARED, ACKED)), AuditEvent.old_value.in_(ids))
                    .order_by(AuditEvent.id)
                )
            )
        cleared: dict[str, datetime] = {}
        acked: dict[str, tuple[str, datetime]] = {}
        for e in follow:
            assert e.old_value is not None
            if e.what == CLEARED:
                cleared.setdefault(e.old_value, e.at)
            else:
                acked.setdefault(e.old_value, (e.who, e.at))
        out = []
        for e in raised:
            source, _, rest = (e.new_value or "").partition(": ")
            title, _, cause = rest.partition("\n")
            who, at = acked.get(str(e.id), ("", None))
            level = e.old_value or "FAULT"
            out.append(
                AlarmRecord(
                    e.id, e.at, level, source, title, cause, cleared.get(str(e.id)), who, at
                )
            )
        return out

    def acknowledge(self, alarm_id: int, who: str) -> AlarmRecord | None:
        """Sign alarm ``alarm_id`` as seen by ``who`` (once); raises the database's error."""
        with self.db.write_session() as s:
            raised = s.get(AuditEvent, alarm_id)
            if raised is None or raised.what != RAISED:
                return None
            done = s.scalars(
                select(AuditEvent.id).where(
                    AuditEvent.what == ACKED, AuditEvent.old_value == str(alarm_id)
                )
            ).first()
            if done is not None:
                return None
            s.add(self._row(datetime.now(UTC), who, ACKED, str(alarm_id), raised.new_value))
        self.version += 1
        return next((r for r in self.recent(200) if r.id == alarm_id), None)

    # -- the writer --------------------------------------------------------------------------

    def _row(
        self, at: datetime, who: str, what: str, old: str | None, new: str | None
    ) -> AuditEvent:
        return AuditEvent(
            at=at, who=who, station_id=self.station_id, what=what, old_value=old, new_value=new
        )

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._write_until_done(item)
            finally:
                self._queue.task_done()

    def _write_until_done(self, item: _Raise | _Clear) -> None:
        """Write ``item``, retrying while the database refuses (an outage is when alarms
        matter most); given up only when the log closes, with a line in the station's log."""
        delay = RETRY_MIN_S
        while True:
            try:
                self._write(item)
            except DB_ERRORS as err:
                if self._thread is None:  # closing: the log line is all that is left
                    log.warning("alarm not written to the audit trail: %s", err)
                    return
                if delay == RETRY_MIN_S:
                    log.warning("alarm not written yet (%s); retrying", err)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._tell(item)
            return

    def _tell(self, item: _Raise | _Clear) -> None:
        for listener in self.listeners:
            if isinstance(item, _Raise):
                listener(True, item.source, item.key[1], item.title, item.cause, item.at)
            else:
                listener(False, item.key[0], item.key[1], "", "", item.at)

    def _write(self, item: _Raise | _Clear) -> None:
        if isinstance(item, _Raise):
            text = f"{item.source}: {item.title}\n{item.cause}"
            with self.db.write_session() as s:
                row = self._row(item.at, WHO, RAISED, item.level, text)
                s.add(row)
                s.flush()
                self._raised_ids[item.key] = row.id
        else:
            raised_id = self._raised_ids.pop(item.key, None)
            if raised_id is None:
                return  # its raise was not written
            with self.db.write_session() as s:
                text = f"{item.key[0]}: {item.key[1]}"
                s.add(self._row(item.at, WHO, CLEARED, str(raised_id), text))
        self.version += 1

    def _close_left_open(self) -> None:
        """Clear what the last run left raised: nobody watched it end, the history says so."""
        try:
            left = [r for r in self.recent(200) if r.cleared_at is None]
            if not left:
                return
            now = datetime.now(UTC)
            with self.db.write_session() as s:
                for r in left:
                    s.add(self._row(now, WHO, CLEARED, str(r.id), RESTART_NOTE))
        except DB_ERRORS as err:
            log.warning("alarms of the last run left open: %s", err)
