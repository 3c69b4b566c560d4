"""What the GUI and the CLI show about the defect log: counters and alarms, thread-safe.

Every part of storage (the publishing side, the writer, the archive) reports here; readers take a
:meth:`StorageHealth.snapshot`, a frozen copy. An alarm is a short sentence naming what is wrong
and where; it is raised when the trouble starts and cleared when it is over (latched alarms stay
until the station restarts, because something was lost or set aside).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HealthSnapshot:
    """The state of storage at one moment."""

    database: str
    alarms: tuple[str, ...]
    #: Inspections published in this run, and of them those the database holds.
    published: int
    committed: int
    #: Inspections of earlier runs found in the journal and written at start-up.
    replayed: int
    batches: int
    db_failures: int
    #: Records that found the writer's queue full and wait in the journal only.
    queue_overflows: int
    journal_failures: int
    #: Records refused by the database (set aside in a file) or lost (neither journal nor queue).
    rejected: int
    lost: int
    last_commit_utc: float | None
    last_error: str
    archive_written: int
    archive_dropped: int
    archive_failed: int
    archive_pruned: int
    archive_free_gb: float | None

    @property
    def ok(self) -> bool:
        return not self.alarms

    @property
    def pending(self) -> int:
        """Inspections of this run not in the database yet (journaled, so not lost)."""
        return max(0, self.published - self.committed - self.lost)


@dataclass
class StorageHealth:
    """Mutable counters and alarms behind :class:`HealthSnapshot`."""

    database: str = ""
    published: int = 0
    committed: int = 0
    replayed: int = 0
    batches: int = 0
    db_failures: int = 0
    queue_overflows: int = 0
    journal_failures: int = 0
    rejected: int = 0
    lost: int = 0
    last_commit_utc: float | None = None
    last_error: str = ""
    archive_written: int = 0
    archive_dropped: int = 0
    archive_failed: int = 0
    archive_pruned: int = 0
    archive_free_gb: float | None = None
    _alarms: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Told ``(key, text)`` when an alarm is raised and ``(key, None)`` when it clears (the
    #: alarm history); called on the raiser's thread, so it must not block.
    listener: Callable[[str, str | None], None] | None = None

    def raise_alarm(self, key: str, text: str) -> None:
        with self._lock:
            new = key not in self._alarms
            self._alarms[key] = text
        if new and self.listener is not None:
            self.listener(key, text)

    def clear_alarm(self, key: str) -> None:
        with self._lock:
            was = self._alarms.pop(key, None) is not None
        if was and self.listener is not None:
            self.listener(key, None)

    def has_alarm(self, key: str) -> bool:
        with self._lock:
            return key in self._alarms

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def committed_batch(self, this_run: int, replayed: int) -> None:
        with self._lock:
            self.committed += this_run
            self.replayed += replayed
            self.batches += 1
            self.last_commit_utc = time.time()

    def failed(self, error: str) -> None:
        with self._lock:
            self.db_failures += 1
            self.last_error = error

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            return HealthSnapshot(
                database=self.database,
                alarms=tuple(self._alarms.values()),
                published=self.published,
                committed=self.committed,
                replayed=self.replayed,
                batches=self.batches,
                db_failures=self.db_failures,
                queue_overflows=self.queue_overflows,
                journal_failures=self.journal_failures,
                rejected=self.rejected,
                lost=self.lost,
                last_commit_utc=self.last_commit_utc,
                last_error=self.last_error,
                archive_written=self.archive_written,
                archive_dropped=self.archive_dropped,
                archive_failed=self.archive_failed,
                archive_pruned=self.archive_pruned,
                archive_free_gb=self.archive_free_gb,
            )
