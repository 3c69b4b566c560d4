"""Alarms raised while the database refuses writes are written once it takes them again."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from aoi.storage.alarms import AlarmLog
from aoi.storage.db import Database

pytestmark = pytest.mark.fault


def test_an_alarm_raised_while_the_database_is_locked_is_written_after(tmp_path: Path) -> None:
    path = tmp_path / "aoi.db"
    with Database(f"sqlite:///{path}", busy_timeout_ms=50) as db:
        db.upgrade()
        with AlarmLog(db, "st1") as alarms:
            locker = sqlite3.connect(path, isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")  # another process holds the database
            try:
                alarms.raise_alarm("PLC", "heartbeat", "PLC not answering", "no heartbeat")
                alarms.clear_alarm("PLC", "heartbeat")
                time.sleep(0.5)  # a few refused attempts (a hang guard below, no speed limit)
                assert alarms.version == 0, "nothing can be written while the lock is held"
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            alarms.flush()
            [record] = alarms.recent()
    assert record.title == "PLC not answering" and record.cause == "no heartbeat"
    assert record.cleared_at is not None, "the clear waited behind its raise, in order"
