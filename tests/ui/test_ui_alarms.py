"""The alarm history: a transient PLC heartbeat loss stays findable after it cleared, and an
acknowledgement is signed, timed and audited."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pytestqt.qtbot import QtBot

from aoi.runner import RunState
from aoi.storage.queries import audit_events
from ui.app import Gui
from ui.logic.alarm_log import AlarmLog
from ui.logic.health import Alarm, Level
from ui.logic.users import Role, User


def test_the_log_opens_closes_and_signs_entries() -> None:
    t0 = datetime(2026, 1, 1, 8, tzinfo=UTC)
    log = AlarmLog()
    plc = Alarm(Level.FAULT, "PLC", "PLC not answering", "heartbeat stopped", "check")
    slow = Alarm(Level.WARN, "Engine", "Too slow", "p99", "")
    assert log.update([plc], t0)
    assert not log.update([plc], t0 + timedelta(seconds=1))  # still the same alarm
    assert log.update([slow], t0 + timedelta(seconds=2))  # PLC back, engine slow
    newest, oldest = log.entries
    assert (newest.text, newest.cleared_at) == ("Engine: Too slow", None)
    assert oldest.text == "PLC: PLC not answering"
    assert oldest.cleared_at == t0 + timedelta(seconds=2)
    signed = log.acknowledge(1, "anna", t0 + timedelta(seconds=5))
    assert signed is not None and signed.acked_by == "anna"
    assert log.acknowledge(1, "ben", t0) is None  # signed once
    assert log.update([slow, plc], t0 + timedelta(seconds=9))  # a second drop: a new entry
    assert [e.text for e in log.entries].count("PLC: PLC not answering") == 2


def test_a_transient_heartbeat_loss_is_in_the_history_and_acknowledged(
    qtbot: QtBot, open_gui: Callable[..., Gui], gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = gui.window
    assert w is not None
    plc = gui.station.plc
    assert plc is not None and plc.sim is not None
    light = w.operator.lights["PLC"]
    w.start_station()
    qtbot.waitUntil(lambda: light.light.summary == "Online", timeout=30_000)
    plc.sim.freeze_heartbeat()
    qtbot.waitUntil(lambda: light.light.level is Level.FAULT, timeout=30_000)
    plc.sim.freeze_heartbeat(False)
    qtbot.waitUntil(lambda: light.light.summary == "Online", timeout=30_000)
    w.stop_station()
    qtbot.waitUntil(lambda: gui.station.runner.state is RunState.STOPPED, timeout=30_000)

    history = w.operator.history
    rows = [
        i for i in range(history.table.rowCount())
        if history.table.item(i, 1).text() == "PLC: PLC not answering"
    ]  # fmt: skip
    assert rows, [history.table.item(i, 1).text() for i in range(history.table.rowCount())]
    row = rows[0]
    assert history.table.item(row, 2).text() != "active"  # it cleared, and is still listed
    assert "heartbeat" in history.table.item(row, 1).toolTip()
    w.log_in(User("anna", Role.OPERATOR))
    history.table.setCurrentCell(row, 0)
    history.ack_button.click()
    assert history.table.item(row, 3).text().startswith("anna ")
    db = gui.station.storage.db  # type: ignore[union-attr]
    since = datetime.now(UTC) - timedelta(minutes=5)
    qtbot.waitUntil(
        lambda: any(e.what == "alarm acknowledged" for e in audit_events(db, since)),
        timeout=10_000,
    )
    event = next(e for e in audit_events(db, since) if e.what == "alarm acknowledged")
    assert event.who == "anna" and "PLC not answering" in (event.new_value or "")
