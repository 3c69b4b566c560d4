"""The operator screen from across the room: a stopped station looks stopped, charts say what
they show."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from aoi.runner import RunState
from aoi.types import Verdict
from ui import theme
from ui.app import Gui
from ui.logic.health import Level, camera_light
from ui.widgets.charts import window_percentiles


def test_percentiles_are_of_the_bars_shown() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100 ms
    assert window_percentiles(values) == (50.0, 99.0)
    assert window_percentiles([7.0]) == (7.0, 7.0)
    assert window_percentiles([30.0, 10.0, 20.0]) == (20.0, 30.0)


def test_a_stopped_camera_is_not_green() -> None:
    assert camera_light("cam", acquiring=True).level is Level.OK
    stopped = camera_light("cam", acquiring=False)
    assert stopped.level is Level.OFF and stopped.summary == "Not acquiring"


def _centre_colour(widget: object) -> QColor:
    image = widget.grab().toImage()  # type: ignore[attr-defined]
    return image.pixelColor(12, image.height() // 2)


def test_after_stop_the_banner_says_stopped_in_grey(
    qtbot: QtBot, qapp: QApplication, open_gui: Callable[..., Gui], gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = gui.window
    assert w is not None and gui.station.runner is not None
    runner, op = gui.station.runner, w.operator
    w.start_station()
    qtbot.waitUntil(lambda: runner.cycles_done >= 3, timeout=30_000)
    w.refresh()
    qtbot.waitUntil(lambda: op.verdict.verdict is not None, timeout=30_000)
    # Inspecting: the verdict's own colour, the camera light green.
    assert op.verdict.shown()[0] == op.verdict.verdict.name
    assert _centre_colour(op.verdict) == QColor(theme.VERDICT_BG[op.verdict.verdict])
    assert op.lights["Camera"].light.level is Level.OK
    w.stop_station()
    qtbot.waitUntil(lambda: runner.state is RunState.STOPPED, timeout=30_000)
    w.refresh()
    word, detail, _part = op.verdict.shown()
    assert word == "STOPPED"
    assert detail.startswith("Last board: ")
    colour = _centre_colour(op.verdict)
    assert colour == QColor(theme.STATE_BG)
    assert colour != QColor(theme.VERDICT_BG[Verdict.OK])
    camera = op.lights["Camera"].light
    assert camera.level is Level.OFF and camera.summary == "Not acquiring"
    assert op.state_label.text() == "STOPPED"


def test_kiosk_refuses_a_stray_close_until_exit_or_an_engineer(
    qtbot: QtBot, open_gui: Callable[..., Gui], gui_recipe: Path
) -> None:
    from ui.logic.users import Role, User

    gui = open_gui(gui_recipe)
    w = gui.window
    assert w is not None and gui.station.runner is not None
    w.set_kiosk(True)
    assert w.exit_button.isVisibleTo(w)
    denied: list[str] = []
    w.access_denied.connect(lambda key, _why: denied.append(key))
    assert not w.close()  # Alt+F4 on the shift operator's screen
    assert w.isVisible() and denied == ["exit"]
    w.start_station()
    qtbot.waitUntil(lambda: gui.station.runner.state is RunState.RUNNING, timeout=10_000)
    w.exit_station()  # running, no login: refused too
    assert w.isVisible() and gui.station.runner.state is RunState.RUNNING
    w.log_in(User("eng", Role.ENGINEER))
    w.exit_station()  # an engineer may: the station stops, the window closes
    assert gui.station.runner.state is not RunState.RUNNING
    assert not w.isVisible()
