"""The review queue as a reviewer meets it: the true count, keys that work at once, the next board
in queue order, a list that stays put while boards arrive, "pending" for undecided, find."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from aoi.runner import RunState
from aoi.storage import Verification
from aoi.storage.queries import count_review_queue, find_inspections, review_queue
from ui import review as review_module
from ui.app import Gui


def _boards(qtbot: QtBot, gui: Gui, ng: int) -> None:
    """Run until ``ng`` more NG boards, stop, wait until the review queue has them all."""
    w, runner = gui.window, gui.station.runner
    assert w is not None and runner is not None
    db = gui.station.storage.db  # type: ignore[union-attr]
    before = count_review_queue(db)
    target = gui.station.counters.snapshot().ng + ng
    w.start_station()
    qtbot.waitUntil(lambda: gui.station.counters.snapshot().ng >= target, timeout=60_000)
    w.stop_station()
    qtbot.waitUntil(lambda: runner.state is RunState.STOPPED, timeout=30_000)
    qtbot.waitUntil(lambda: count_review_queue(db) >= before + ng, timeout=30_000)


def test_review_queue_counts_keys_order_and_find(
    qtbot: QtBot,
    qapp: QApplication,
    open_gui: Callable[..., Gui],
    gui_recipe: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(review_module, "PAGE", 3)  # fewer listed than waiting
    gui = open_gui(gui_recipe)
    w = gui.window
    assert w is not None
    db = gui.station.storage.db  # type: ignore[union-attr]
    _boards(qtbot, gui, 5)
    waiting = count_review_queue(db)
    assert waiting >= 5 and len(review_queue(db, limit=1000)) == waiting

    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5_000)
    assert w.open_screen("review")
    rv = w.review
    # The true count, not the page size; the list is the oldest boards, oldest first.
    assert rv.queue_count.text() == f"{waiting} boards waiting (oldest 3 listed)"
    assert len(rv.boards) == 3
    times = [b.inspected_at for b in rv.boards]
    assert times == sorted(times)
    assert "pending of" in rv.queue.item(0).text()
    assert rv.defects.item(0, 4).text() == "pending"

    # C works without a click: focus is on the navigation bar, the key still decides.
    w.nav_buttons["review"].setFocus()
    first_board = rv.board
    assert first_board is not None and first_board.uuid == rv.boards[0].uuid
    second = rv.boards[1].uuid
    first = rv.current_defect()
    assert first is not None
    qtbot.keyClick(w.nav_buttons["review"], Qt.Key.Key_C)
    stored = find_inspections(db, inspection_uuid=first_board.uuid)[0]
    assert {d.id: d.review_state for d in stored.defects}[first.id] == (
        Verification.CONFIRMED.value
    )
    # The rest of the board by key; then the next board in the queue, not the newest.
    while rv.board is not None and rv.board.uuid == first_board.uuid:
        assert rv.decide("false_call")
    assert rv.board is not None and rv.board.uuid == second
    assert rv.queue.currentRow() == 0  # the finished board left; the next is on top

    # Boards arriving while the reviewer works: the listed boards and the selection stay put.
    listed = [b.uuid for b in rv.boards]
    current = rv.board.uuid
    _boards(qtbot, gui, 2)
    rv.poll()
    assert [b.uuid for b in rv.boards] == listed
    assert rv.board.uuid == current
    assert rv.queue_count.text().startswith(f"{count_review_queue(db)} boards waiting")

    # Find by serial and by the PLC's part number, listed or not.
    newest = review_queue(db, limit=1)[0]
    assert newest.uuid not in listed
    rv.find_text.setText(newest.serial or "")
    assert rv.find() and rv.board.uuid == newest.uuid
    rv.find_text.setText(str(rv.boards[2].part_sequence))
    assert rv.find() and rv.board.uuid == rv.boards[2].uuid
    assert rv.queue.currentRow() == 2
    rv.find_text.setText("NO-SUCH-SERIAL")
    assert not rv.find() and "No board" in rv.decision_note.text()
