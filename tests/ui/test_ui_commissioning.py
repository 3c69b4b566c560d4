"""Commissioning a new product from the GUI, and recipe saves that keep the file's layout.

The whole afternoon through the screens' own widgets: a new product copied from a recipe, a
golden template grabbed and saved, its alignment checked on a second board, a dry run, Activate,
and 20 boards inspected with the new recipe.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

pytest.importorskip("tomlkit")

from aoi.recipe import load_recipe, recipes_dir
from aoi.runner import RunState
from aoi.storage.lookup import iter_inspections
from aoi.storage.queries import audit_events
from aoi.storage.window import Window
from ui.app import Gui
from ui.logic.users import Role, User
from ui.main_window import MainWindow

OpenGui = Callable[..., Gui]


def _engineer(qtbot: QtBot, gui: Gui) -> MainWindow:
    w = gui.window
    assert w is not None
    w.log_in(User("ben", Role.ENGINEER))
    assert w.open_screen("engineer")
    qtbot.waitUntil(lambda: w.engineer.path is not None, timeout=30_000)
    return w


def _click(qtbot: QtBot, button: object) -> None:
    assert button.isEnabled(), button.text()  # type: ignore[attr-defined]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # type: ignore[arg-type]


@pytest.mark.integration  # the soft PLC over Modbus/TCP on 127.0.0.1
def test_a_new_product_is_commissioned_from_the_gui(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = gui_recipe.parent
    monkeypatch.setenv("AOI_RECIPES_DIR", str(folder))
    gui = open_gui(gui_recipe)
    w = _engineer(qtbot, gui)
    eng = w.engineer
    old_code = load_recipe(gui_recipe, check_files=False).recipe.product_code

    # 1. New product from a copy of the open recipe.
    path = eng.new_from("board-new")
    assert path == folder / "board-new.toml" and eng.path == path
    new = load_recipe(path, check_files=False).recipe
    assert new.name == "board-new" and new.version == 1 and new.product_code != old_code
    assert any("board-new" in eng.recipes.item(i).text() for i in range(eng.recipes.count()))

    # 2. The golden template from a grab, then a second grab checked against it.
    assert w.open_screen("camera")
    golden = w.camera.golden
    golden.source.setCurrentIndex(golden.source.findData("synthetic"))
    _click(qtbot, golden.grab_button)
    assert golden.board is not None
    board = golden.board.copy()
    _click(qtbot, golden.save_button)
    template = folder / "templates" / "board-new.png"
    assert np.array_equal(cv2.imread(str(template), cv2.IMREAD_GRAYSCALE), board)
    assert tomllib.loads(path.read_text(encoding="utf-8"))["template"] == "templates/board-new.png"
    _click(qtbot, golden.check_button)
    assert golden.result.text().startswith("Aligned: shifted"), golden.result.text()

    # 3. Dry run of the new recipe, off line.
    assert w.open_screen("engineer")
    assert eng.path == path
    eng.dry_boards.setValue(3)
    _click(qtbot, eng.dry_button)
    qtbot.waitUntil(lambda: eng._dry_thread is None, timeout=30_000)
    assert eng.dry_result.text().startswith("3 synthetic boards"), eng.dry_result.text()

    # 4. Activate: the list marks the new recipe as the one on the line.
    _click(qtbot, eng.activate_button)
    active = gui.station.active_recipe
    assert active is not None and active.name == "board-new"
    assert active.template_path == template.resolve()
    live = [eng.recipes.item(i).text() for i in range(eng.recipes.count())]
    assert [t.split("\n")[0] for t in live if "ON THE LINE" in t] == ["board-new"]

    # 5. Inspect 20 boards with it.
    assert w.open_screen("operator")
    runner = gui.station.runner
    assert runner is not None
    _click(qtbot, w.operator.start_button)
    qtbot.waitUntil(lambda: runner.cycles_done >= 20, timeout=60_000)
    _click(qtbot, w.operator.stop_button)
    qtbot.waitUntil(lambda: runner.state is RunState.STOPPED, timeout=30_000)
    storage = gui.station.storage
    assert storage is not None
    qtbot.waitUntil(
        lambda: storage.status().committed >= storage.status().published, timeout=10_000
    )
    since = datetime.now(UTC) - timedelta(hours=1)
    rows = list(iter_inspections(storage.db, Window(since, recipe="board-new")))
    assert len(rows) >= 20


def test_a_saved_shipped_recipe_keeps_its_comments_and_goes_to_the_site_folder(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    site = tmp_path / "site"
    monkeypatch.setenv("AOI_RECIPES_DIR", str(site))
    shipped = recipes_dir() / "board-a-640.toml"
    before = shipped.read_text(encoding="utf-8")
    gui = open_gui(gui_recipe)
    eng = _engineer(qtbot, gui).engineer

    def edit_and_save(score: float) -> list[str]:
        old = eng.path.read_text(encoding="utf-8")  # type: ignore[union-attr]
        eng.form.widget("classes.short.score").setValue(score)  # type: ignore[attr-defined]
        assert eng.save(), eng.messages.text()
        new = (site / "board-a-640.toml").read_text(encoding="utf-8")
        return [
            line
            for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]

    eng.open(shipped)
    first = edit_and_save(0.55)
    assert shipped.read_text(encoding="utf-8") == before, "the shipped recipe is never written"
    assert eng.path == site / "board-a-640.toml"
    # The site copy names the shipped model by absolute path; otherwise only the value changed.
    assert sorted(first) == sorted([
        "-version = 1", "+version = 2",
        '-path = "../models/aoi-defect-v2.onnx"',
        f'+path = "{(recipes_dir().parent / "models" / "aoi-defect-v2.onnx").resolve()}"',
        "-short = { score = 0.5, review_score = 0.35, min_area_px = 16 }",
        "+short = { score = 0.55, review_score = 0.35, min_area_px = 16 }",
    ])  # fmt: skip
    second = edit_and_save(0.6)
    assert second == [
        "-version = 2",
        "+version = 3",
        "-short = { score = 0.55, review_score = 0.35, min_area_px = 16 }",
        "+short = { score = 0.6, review_score = 0.35, min_area_px = 16 }",
    ]


@pytest.mark.integration  # the soft PLC over Modbus/TCP on 127.0.0.1
def test_a_counter_reset_needs_an_engineer_and_is_audited_with_the_old_counts(
    qtbot: QtBot, open_gui: OpenGui, gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = gui.window
    assert w is not None and gui.station.runner is not None
    runner = gui.station.runner
    _click(qtbot, w.operator.start_button)
    qtbot.waitUntil(lambda: runner.cycles_done >= 3, timeout=30_000)
    _click(qtbot, w.operator.stop_button)
    qtbot.waitUntil(lambda: runner.state is RunState.STOPPED, timeout=30_000)
    before = gui.station.counters.snapshot()
    assert before.inspected >= 3
    # Per recipe as well as per shift, on the screen: the boards by recipe, with their yield.
    w.refresh()
    fpy = before.ok / before.inspected
    line = w.operator.recipe_line
    assert line.full_text == f"Per recipe: test-board {before.inspected} boards, yield {fpy:.1%}"
    assert line.isVisibleTo(w) and line.text() == line.full_text  # room enough at 1366 px
    with qtbot.waitSignal(w.access_denied) as denied:
        assert not w.reset_counters()  # the shift operator may not
    assert "an engineer login" in denied.args[1]
    assert gui.station.counters.snapshot().inspected == before.inspected
    w.log_in(User("ben", Role.ENGINEER))
    _click(qtbot, w.operator.reset_button)
    assert gui.station.counters.snapshot().inspected == 0
    storage = gui.station.storage
    assert storage is not None
    events = audit_events(storage.db, datetime.now(UTC) - timedelta(minutes=5))
    resets = [(e.who, e.old_value, e.new_value) for e in events if e.what.startswith("counters")]
    assert resets == [
        ("ben", f"{before.inspected} boards: {before.ok} OK, {before.ng} NG, "
                f"{before.review} review, {before.error} error", "reset")
    ]  # fmt: skip
    w.refresh()
    assert w.operator.recipe_line.full_text == "Per recipe: no board this shift yet"
