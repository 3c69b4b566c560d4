"""The alarm history: a PLC heartbeat lost for ~100 ms, between two refreshes of the screen, is
recorded where it happens, stays listed after it cleared and after the GUI is closed and opened
again on the same database; an acknowledgement is signed, timed and persisted."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pytestqt.qtbot import QtBot

from aoi.app.station import StationOptions
from aoi.runner import RunState
from aoi.storage.alarms import ACKED, RESTART_NOTE, AlarmLog
from aoi.storage.db import Database
from aoi.storage.queries import audit_events
from ui.app import Gui
from ui.logic.alarm_log import AlarmLog as ScreenAlarmLog
from ui.logic.users import Role, User
from ui.widgets.alarm_history import AlarmHistory

HEARTBEAT_LOST = "PLC: PLC not answering"


def test_the_log_records_raise_clear_and_sign_off_in_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'aoi.db'}"
    with Database(url) as db:
        db.upgrade()
        with AlarmLog(db, "st1") as log:
            log.raise_alarm("PLC", "LINK", "PLC link lost", "connection refused")
            log.raise_alarm("PLC", "LINK", "PLC link lost", "again")  # still the same alarm
            log.clear_alarm("PLC", "LINK")
            log.raise_alarm("Camera", "CAMERA_LOST", "Camera lost", "unplugged")
            log.raise_alarm("PLC", "LINK", "PLC link lost", "a second loss")
            log.flush()
            newest, camera, first = log.recent()
            assert (newest.text, newest.cause, newest.cleared_at) == (
                "PLC: PLC link lost", "a second loss", None,
            )  # fmt: skip
            assert first.cause == "connection refused" and first.cleared_at is not None
            assert camera.text == "Camera: Camera lost" and camera.cleared_at is None
            signed = log.acknowledge(first.id, "anna")
            assert signed is not None and signed.acked_by == "anna" and signed.acked_at
            assert log.acknowledge(first.id, "ben") is None  # signed once
            assert len(log.recent(limit=2)) == 2
        with AlarmLog(db, "st1") as again:  # a restart closes what the last run left open
            entries = again.recent()
            assert [e.text for e in entries] == [newest.text, camera.text, first.text]
            assert all(e.cleared_at is not None for e in entries)
            assert entries[2].acked_by == "anna"
        notes = [e.new_value for e in audit_events(db, datetime.now(UTC) - timedelta(hours=1))]
        assert notes.count(RESTART_NOTE) == 2
        assert AlarmLog(db, "other").recent() == []  # another station's history


def _heartbeat_rows(gui: Gui) -> list[int]:
    assert gui.window is not None
    t = gui.window.operator.history.table
    return [i for i in range(t.rowCount()) if t.item(i, 1).text() == HEARTBEAT_LOST]


def _blip(qtbot: QtBot, gui: Gui) -> int:
    """Start, freeze the soft PLC's heartbeat for ~100 ms, stop; the history row's alarm id."""
    w = gui.window
    alarms = gui.station.alarms
    assert w is not None and alarms is not None
    plc = gui.station.plc
    assert plc is not None and plc.sim is not None
    light = w.operator.lights["PLC"]
    w.start_station()
    qtbot.waitUntil(lambda: light.light.summary == "Online", timeout=30_000)
    plc.sim.freeze_heartbeat()
    time.sleep(0.1)  # the GUI thread sleeps: no refresh of the screen sees the fault
    plc.sim.freeze_heartbeat(False)
    qtbot.waitUntil(lambda: not alarms.is_active("PLC", "PLC_HEARTBEAT_LOST"), timeout=10_000)
    w.stop_station()
    qtbot.waitUntil(lambda: gui.station.runner.state is RunState.STOPPED, timeout=30_000)
    alarms.flush()
    qtbot.waitUntil(lambda: bool(_heartbeat_rows(gui)), timeout=10_000)
    history = w.operator.history
    row = _heartbeat_rows(gui)[0]
    assert history.table.item(row, 2).text() != "active"  # it cleared, and is still listed
    assert "plc_heartbeat stayed" in history.table.item(row, 1).toolTip()
    return history.entries[row].id


def test_a_100ms_heartbeat_loss_is_in_the_history_after_a_restart(
    qtbot: QtBot, open_gui: Callable[..., Gui], gui_recipe: Path, tmp_path: Path
) -> None:
    station_toml = tmp_path / "station.toml"
    # A 40 ms watchdog: a heartbeat frozen for 100 ms is lost and back between two refreshes.
    station_toml.write_text("[plc]\nheartbeat_period_ms = 20\nwatchdog_periods = 2\n")
    options = StationOptions(
        str(gui_recipe), station=str(station_toml), plc="sim", threads=1,
        data_dir=tmp_path / "data",
    )  # fmt: skip
    with Gui(options, refresh_ms=50) as gui:
        raised = _blip(qtbot, gui)

    again = open_gui(gui_recipe, station=str(station_toml))  # the same data folder and database
    assert again.window is not None
    history = again.window.operator.history

    def raised_row() -> int | None:
        # Found by its alarm, not its place or its time: on a loaded machine the reopened
        # station's own 40 ms watchdog can lose the heartbeat again, in the same second, and
        # that newer row is listed above it.
        rows = [r for r in _heartbeat_rows(again) if history.entries[r].id == raised]
        return rows[0] if rows else None

    qtbot.waitUntil(lambda: raised_row() is not None, timeout=10_000)
    row = raised_row()
    assert row is not None and history.table.item(row, 2).text() != "active"
    again.window.log_in(User("anna", Role.OPERATOR))
    history.table.setCurrentCell(row, 0)
    history.ack_button.click()
    row = raised_row()
    assert row is not None and history.table.item(row, 3).text().startswith("anna ")
    db = again.station.storage.db  # type: ignore[union-attr]
    since = datetime.now(UTC) - timedelta(minutes=5)
    acks = [e for e in audit_events(db, since) if e.what == ACKED]
    assert [(e.who, e.old_value) for e in acks] == [("anna", str(raised))]
    assert HEARTBEAT_LOST in (acks[0].new_value or "")


def test_the_operator_signs_the_alarm_picked_even_when_a_new_one_moves_the_rows(
    qtbot: QtBot, tmp_path: Path
) -> None:
    with Database(f"sqlite:///{tmp_path / 'aoi.db'}") as db:
        db.upgrade()
        with AlarmLog(db, "st1") as log:
            screen = ScreenAlarmLog(log)
            history = AlarmHistory()
            qtbot.addWidget(history)
            history.acknowledge_requested.connect(lambda i: screen.acknowledge(i, "anna"))

            def refresh() -> None:
                log.flush()
                screen.update()
                history.set_entries(screen.entries)

            log.raise_alarm("Camera", "CAMERA_LOST", "Camera lost", "unplugged")
            refresh()
            history.table.setCurrentCell(0, 0)
            picked = history.entries[0]
            assert picked.source == "Camera"
            log.raise_alarm("PLC", "LINK", "PLC link lost", "connection refused")
            refresh()  # the new alarm is listed on top: every row moved down
            assert [e.source for e in history.entries] == ["PLC", "Camera"]
            assert history.entries[history.table.currentRow()] == picked
            history.ack_button.click()
            refresh()
            signed = {e.source: e.acked_by for e in screen.entries}
            assert signed == {"Camera": "anna", "PLC": ""}
            assert history.table.item(1, 3).text().startswith("anna ")
            assert history.table.item(0, 3).text() == "—"
            history.table.clearSelection()
            history.table.setCurrentCell(-1, 0)
            history.ack_button.click()  # nothing picked: nothing signed
            refresh()
            assert [e.acked_by for e in screen.entries] == ["", "anna"]
