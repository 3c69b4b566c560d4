"""The screens with the real core behind them: a run, a review, roles, recipe editing, the PLC.

Each test opens the GUI on the tiny difference-model recipe with a soft PLC and a SQLite file in
tmp_path, drives it as a person would (buttons, keys) and checks what the screen shows and what
reached the database.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from aoi.runner import RunState
from aoi.storage import Verification
from aoi.storage.queries import audit_events, find_inspections, review_queue
from ui.app import Gui
from ui.logic.health import Level
from ui.logic.recipe_edit import validate
from ui.logic.users import Role, User
from ui.logic.words import labelled
from ui.main_window import MainWindow

OpenGui = Callable[..., Gui]


def _run_boards(qtbot: QtBot, gui: Gui, boards: int) -> None:
    """Press START, let ``boards`` boards through, press STOP, wait for the database."""
    w = gui.window
    assert w is not None and gui.station.runner is not None
    runner = gui.station.runner
    qtbot.mouseClick(w.operator.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: runner.cycles_done >= boards, timeout=30_000)
    qtbot.mouseClick(w.operator.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: runner.state is RunState.STOPPED, timeout=30_000)
    storage = gui.station.storage
    assert storage is not None
    qtbot.waitUntil(
        lambda: storage.status().committed >= storage.status().published, timeout=10_000
    )


def _window(gui: Gui) -> MainWindow:
    assert gui.window is not None
    return gui.window


def test_a_run_shows_verdicts_and_counters(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = _window(gui)
    op = w.operator
    assert op.start_button.isEnabled() and not op.stop_button.isEnabled()
    assert op.state_label.text() == "STOPPED"
    _run_boards(qtbot, gui, 6)
    runner = gui.station.runner
    assert runner is not None and runner.last_result is not None
    # The banner shows the last board's verdict; the counters are exact, frames may be skipped.
    qtbot.waitUntil(lambda: op.verdict.verdict is runner.last_result.verdict, timeout=30_000)
    w.refresh()
    c = gui.station.counters.snapshot()
    assert c.inspected == runner.cycles_done >= 6
    assert c.ok + c.ng + c.review + c.error == c.inspected
    assert op.tiles["boards"].value == str(c.inspected)
    assert op.tiles["ng"].value == str(c.ng)
    assert op.tiles["ok"].value == str(c.ok)
    assert op.tiles["fpy"].value == f"{c.ok / c.inspected:.1%}"
    assert op.chart.snapshot is not None and len(op.chart.snapshot.recent_ms) == c.window
    assert op.state_label.text() == "STOPPED"
    lights = {name: view.light for name, view in op.lights.items()}
    assert lights["Engine"].level in (Level.OK, Level.WARN)
    assert lights["Database"].level is Level.OK, lights["Database"]
    assert lights["PLC"].level is Level.OK, lights["PLC"]
    assert gui.bridge.received >= 1
    # START and STOP are in the audit trail.
    assert gui.station.storage is not None
    events = audit_events(gui.station.storage.db, datetime.now(UTC) - timedelta(minutes=5))
    assert [(e.what, e.new_value) for e in events][:2] == [
        ("station.state", "stopped"),
        ("station.state", "running"),
    ]


def test_a_review_decision_reaches_the_database(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = _window(gui)
    db = gui.station.storage.db  # type: ignore[union-attr]
    runner = gui.station.runner
    assert runner is not None
    qtbot.mouseClick(w.operator.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gui.station.counters.snapshot().ng >= 2, timeout=30_000)
    w.stop_station()
    qtbot.waitUntil(lambda: runner.state is RunState.STOPPED, timeout=30_000)
    qtbot.waitUntil(lambda: len(review_queue(db)) >= 2, timeout=30_000)

    assert w.open_screen("review")  # operators review
    review = w.review
    review.reload()
    board = review.board
    assert board is not None
    first = review.current_defect()
    assert first is not None and first.review_state == Verification.NOT_VERIFIED.value
    review.setFocus()
    qtbot.keyClick(review, Qt.Key.Key_F)  # false call
    stored = find_inspections(db, inspection_uuid=board.uuid)[0]
    state = {d.id: d.review_state for d in stored.defects}
    assert state[first.id] == Verification.FALSE_CALL.value

    # Accept needs a reason; with one it is stored, signed by whoever is logged in.
    w.log_in(User("anna", Role.OPERATOR))
    nxt, nxt_board = review.current_defect(), review.board
    assert nxt is not None and nxt_board is not None and nxt.id != first.id
    assert not review.decide("accept")
    review.reason.setCurrentText("cosmetic, within the customer's limits")
    qtbot.keyClick(review, Qt.Key.Key_A)
    stored = find_inspections(db, inspection_uuid=nxt_board.uuid)[0]
    assert {d.id: d.review_state for d in stored.defects}[nxt.id] == Verification.ACCEPTED.value

    # New NG boards join the open queue; the reviewer stays on the board being reviewed.
    current, queued = review.board, len(review.boards)
    assert current is not None
    ng = gui.station.counters.snapshot().ng
    w.start_station()
    qtbot.waitUntil(lambda: gui.station.counters.snapshot().ng >= ng + 2, timeout=30_000)
    w.stop_station()
    qtbot.waitUntil(lambda: runner.state is RunState.STOPPED, timeout=30_000)
    qtbot.waitUntil(lambda: len(review_queue(db)) >= queued + 2, timeout=30_000)
    review.poll()
    assert len(review.boards) >= queued + 2
    assert review.board is not None and review.board.uuid == current.uuid
    stats = review.stats
    assert "False call" in stats.false_call_detail.text() or stats.false_call_rate.text() != "—"


def test_an_operator_cannot_open_the_engineer_screen(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = _window(gui)
    assert w.session.user.role is Role.OPERATOR
    with qtbot.waitSignal(w.access_denied, timeout=30_000) as denied:
        assert not w.open_screen("engineer")
    assert denied.args[0] == "engineer"
    assert "an engineer login" in denied.args[1]
    assert w.current_screen() == "operator"
    assert not w.open_screen("camera")
    assert not w.open_screen("admin")
    assert not w.nav_buttons["engineer"].icon().isNull(), "locked screens show a padlock"

    w.store.add("ben", Role.ENGINEER, "4711")
    assert w.store.authenticate("ben", "0000") is None
    ben = w.store.authenticate("ben", "4711")
    assert ben is not None
    w.log_in(ben)
    assert w.open_screen("engineer") and w.current_screen() == "engineer"
    assert not w.open_screen("admin"), "user management needs an admin"
    w.log_out()
    assert w.current_screen() == "operator", "logging out leaves the locked screen"


def test_an_invalid_threshold_shows_the_schema_message_and_cannot_be_saved(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = _window(gui)
    w.log_in(User("ben", Role.ENGINEER))
    assert w.open_screen("engineer")
    eng = w.engineer
    qtbot.waitUntil(lambda: eng.path is not None, timeout=30_000)
    score = eng.form.widget("classes.spurious_copper.score")
    score.setValue(1.5)  # type: ignore[attr-defined]

    raw = tomllib.loads(gui_recipe.read_text(encoding="utf-8"))
    raw["classes"]["spurious_copper"]["score"] = 1.5
    expected = validate(raw, str(eng.path)).messages
    assert expected and "classes.spurious_copper.score" in expected[0]
    # The schema's messages, worded with the form's labels (not the file's field names).
    assert eng.messages.text() == "\n".join(labelled(expected, eng.form.labels))
    assert eng.messages.text().startswith("spurious copper · NG score ≥: ")
    assert score.property("invalid") is True
    assert not eng.save_button.isEnabled()
    assert not eng.save()
    assert "version" not in tomllib.loads(gui_recipe.read_text(encoding="utf-8"))  # still v1

    # A review score above the score is refused by the rule's own validator.
    score.setValue(0.6)  # type: ignore[attr-defined]
    eng.form.widget("classes.spurious_copper.review_score").setValue(0.7)  # type: ignore[attr-defined]
    assert "Review score ≥ must be < NG score ≥" in eng.messages.text(), eng.messages.text()
    assert "review_score" not in eng.messages.text()
    assert not eng.save_button.isEnabled()

    eng.form.widget("classes.spurious_copper.review_score").setValue(0.3)  # type: ignore[attr-defined]
    assert eng.save_button.isEnabled()
    assert eng.save()
    saved = tomllib.loads(gui_recipe.read_text(encoding="utf-8"))
    assert saved["version"] == 2
    assert saved["classes"]["spurious_copper"]["score"] == 0.6
    assert (gui_recipe.parent / "history" / "test-board.v1.toml").is_file()
    assert gui.station.storage is not None
    events = audit_events(gui.station.storage.db, datetime.now(UTC) - timedelta(minutes=5))
    changes = {(e.who, e.what, e.old_value, e.new_value) for e in events}
    assert ("ben", "recipe test-board: classes.spurious_copper.score", "0.5", "0.6") in changes
    assert ("ben", "recipe test-board: version", "1", "2") in changes

    # The saved version goes live on Activate (station stopped); the PLC sees its checksum.
    assert eng.activate_button.isEnabled()
    assert eng.activate()
    active = gui.station.active_recipe
    assert active is not None and active.recipe.version == 2


@pytest.mark.integration  # the soft PLC over Modbus/TCP on 127.0.0.1
def test_a_plc_link_drop_turns_the_plc_light_red_with_its_cause(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = _window(gui)
    plc = gui.station.plc
    assert plc is not None and plc.sim is not None
    light = w.operator.lights["PLC"]
    w.start_station()
    qtbot.waitUntil(lambda: light.light.summary == "Online", timeout=30_000)
    assert light.light.level is Level.OK

    plc.sim.freeze_heartbeat()  # the PLC stops talking: program halted or cable pulled
    qtbot.waitUntil(lambda: light.light.level is Level.FAULT, timeout=30_000)
    assert light.light.summary == "PLC not answering"
    assert "heartbeat stopped" in light.light.cause
    assert "cable" in light.light.action
    alarms = [w.operator.alarms.item(i).text() for i in range(w.operator.alarms.count())]
    assert any(a.startswith("PLC: PLC not answering\n→ Check the cable") for a in alarms), alarms

    plc.sim.freeze_heartbeat(False)  # back: the line clears the error and parts flow again
    qtbot.waitUntil(lambda: light.light.summary == "Online", timeout=30_000)
    w.stop_station()
    qtbot.waitUntil(lambda: not gui.station.running, timeout=30_000)


def test_a_dry_run_inspects_the_edited_recipe_off_line(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = _window(gui)
    before = gui_recipe.read_text(encoding="utf-8")
    _run_boards(qtbot, gui, 4)  # NG boards go to the archive: stored images to dry-run on
    storage = gui.station.storage
    assert storage is not None
    qtbot.waitUntil(lambda: storage.status().archive_written >= 1, timeout=30_000)
    w.log_in(User("ben", Role.ENGINEER))
    assert w.open_screen("engineer")
    eng = w.engineer
    qtbot.waitUntil(lambda: eng.path is not None, timeout=30_000)
    eng.form.widget("classes.spurious_copper.score").setValue(0.99)  # type: ignore[attr-defined]
    eng.dry_boards.setValue(3)
    published = storage.status().published
    eng.start_dry_run()
    qtbot.waitUntil(lambda: eng._dry_thread is None, timeout=30_000)
    assert eng.dry_result.text().startswith("3 synthetic boards\nOK "), eng.dry_result.text()
    eng.dry_source.setCurrentIndex(1)  # this station's stored images of the recipe
    eng.start_dry_run()
    qtbot.waitUntil(lambda: eng._dry_thread is None, timeout=30_000)
    assert " stored boards\nOK " in eng.dry_result.text(), eng.dry_result.text()
    assert "would change verdict" in eng.dry_result.text()
    assert storage.status().published == published, "a dry run records nothing"
    assert gui_recipe.read_text(encoding="utf-8") == before, "nor saves the recipe"


def test_first_admin_login_and_audited_role_changes(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path
) -> None:
    from ui.admin import LoginDialog

    gui = open_gui(gui_recipe)
    w = _window(gui)
    dialog = LoginDialog(w.store, "", None, gui.station.audit_quietly)
    assert dialog.first_admin, "with no admin yet, the dialog creates one"
    dialog.name.setText("chief")
    dialog.secret.setText("2468")
    dialog.again.setText("2469")
    dialog.try_accept()
    assert dialog.user is None and "differ" in dialog.message.text()
    dialog.again.setText("2468")
    dialog.try_accept()
    assert dialog.user is not None and dialog.user.role is Role.ADMIN
    login = LoginDialog(w.store)
    assert not login.first_admin
    login.name.setText("chief")
    login.secret.setText("0000")
    login.try_accept()
    assert login.user is None and "wrong PIN" in login.message.text()
    w.log_in(dialog.user)
    assert w.open_screen("admin")
    admin = w.admin
    admin.name.setText("anna")
    admin.role.setCurrentText("Operator")
    admin.secret.setText("1357")
    assert admin.add_user()
    admin.role.setCurrentText("Engineer")
    assert admin.set_role()
    assert w.store.authenticate("anna", "1357") is not None
    assert gui.station.storage is not None
    events = audit_events(gui.station.storage.db, datetime.now(UTC) - timedelta(minutes=5))
    changes = [(e.who, e.what, e.old_value, e.new_value) for e in events]
    assert ("chief", "user anna: role", "Operator", "Engineer") in changes
    assert ("chief", "user anna", None, "Operator") in changes
    assert ("chief", "user chief", None, "admin (first admin, created here)") in changes
    assert admin.audit.rowCount() == len(events)
