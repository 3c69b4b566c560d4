"""Crash safety: a station process killed with SIGKILL in mid-run, twice, loses no inspection
whose verdict reached the PLC, and leaves a database that passes SQLite's integrity check.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from aoi.config import StorageConfig
from aoi.storage import Storage
from aoi.storage.db import Database
from aoi.storage.tables import Defect, Inspection

CHILD = Path(__file__).with_name("station_child.py")


def _run_and_kill(recipe: Path, url: str, data: Path, verdicts: int) -> list[str]:
    """Start the station, SIGKILL it once ``verdicts`` reached the PLC; the UUIDs printed."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(recipe), url, str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("PLC "):
                seen.append(line.split()[1])
            if len(seen) >= verdicts or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGKILL)
        # What it printed before the signal landed reached the PLC too.
        rest, _ = proc.communicate(timeout=30)
        seen += [ln.split()[1] for ln in rest.splitlines() if ln.startswith("PLC ")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(seen) >= verdicts, f"the station gave only {len(seen)} verdicts in 60 s"
    return seen


@pytest.mark.slow
@pytest.mark.integration  # the station runs in a child process, killed with SIGKILL
def test_sigkill_mid_run_loses_no_verdict_that_reached_the_plc(
    make_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    recipe = make_recipe()
    db_path = tmp_path / "aoi.db"
    url = f"sqlite:///{db_path}"
    data = tmp_path / "station"

    first = _run_and_kill(recipe, url, data, verdicts=120)
    # The second run replays the first one's journal while it inspects, and is killed too.
    second = _run_and_kill(recipe, url, data, verdicts=80)

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []

    config = StorageConfig(journal_dir=data / "journal", archive_images=False)
    with Storage(config, station_id="crash-test", database_url=url, data_dir=data) as storage:
        pass
    with Database(url) as db, db.session() as s:
        stored = {str(u) for u in s.scalars(select(Inspection.uuid))}
        ng = s.scalar(select(func.count()).where(Inspection.verdict == "NG")) or 0
        defects = s.scalar(select(func.count()).select_from(Defect)) or 0
    missing = set(first + second) - stored
    assert not missing, f"{len(missing)} verdicts that reached the PLC are not in the database"
    assert storage.status().rejected == 0
    assert ng > 0 and defects >= ng
