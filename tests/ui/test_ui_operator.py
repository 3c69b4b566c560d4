"""The operator screen from across the room: a stopped station looks stopped, charts say what
they show."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
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


def _frame(verdict: Verdict, part: int, defects: int = 1) -> object:
    """A display frame of a 64x48 board with ``defects`` 'open' defects on NG."""
    import dataclasses

    import numpy as np

    from aoi.types import Defect, Defects, Frame, InspectionResult
    from ui.bridge import prepare

    image = np.full((48, 64), 200, np.uint8)
    items = [Defect(1, "open", (2 + i, 2, 4 + i, 4), 4, 0.9) for i in range(defects)]
    r = InspectionResult(
        part, 0, "b", "r", "h", "m", "cpu", verdict,
        Defects.from_items(items if verdict is Verdict.NG else []), Defects.empty(),
        {}, 5.0, False, None, frame=Frame(image, 0, 0, "synthetic"),
    )  # fmt: skip
    return prepare(dataclasses.replace(r, part_sequence=part), fit=(320, 240))


def test_grouped_defect_summary() -> None:
    from ui.operator import grouped_summary

    got = grouped_summary([("spurious_copper", 0.9), ("short", 0.99), ("spurious_copper", 0.8)])
    assert got == "spurious copper x2, short 0.99"
    assert grouped_summary([(c, 0.5) for c in ("a", "b", "c", "d")]).endswith(" …")


def test_the_last_ng_holds_and_the_strip_brings_a_board_back(qapp: QApplication) -> None:
    from ui.operator import OperatorScreen

    op = OperatorScreen()
    op.resize(1000, 700)
    op.show()
    ng = _frame(Verdict.NG, 1, defects=3)
    op.show_frame(ng)
    assert op.on_image is ng and op.image._caption == ""
    assert "open x3" in op.verdict.detail
    ok = [_frame(Verdict.OK, p) for p in (2, 3, 4)]
    for f in ok:
        op.show_frame(f)
    # The banner follows the line; the image keeps the NG board, marked as held.
    assert op.verdict.verdict is Verdict.OK
    assert op.on_image is ng and op.image._caption.startswith("HELD: NG part 1")
    assert [r.part_sequence for r in op.strip.results] == [1, 2, 3, 4]
    assert op.strip.selected == 0
    # A click on the third tile holds part 3; Live goes back (to the held NG while Hold is on).
    op.strip.picked.emit(2)
    assert op.on_image is ok[1] and op.strip.selected == 2
    op.show_frame(_frame(Verdict.OK, 5))
    assert op.on_image is ok[1]
    op.hold.setChecked(False)  # hold off: the newest board
    assert op.on_image.result.part_sequence == 5 and op.image._caption == ""
    op.close()


def test_the_image_zooms_about_the_pointer_pans_and_fits_again(qapp: QApplication) -> None:
    from PySide6.QtCore import QPointF

    from ui.widgets import ImageView

    view = ImageView()
    view.resize(400, 300)
    view.set_frame(_frame(Verdict.NG, 1))  # type: ignore[arg-type]
    view.show()
    fit = view._fit()
    at = QPointF(100, 120)
    view.zoom(2.0, at)
    assert view.view is not None and view.view.width() == fit.width() * 2
    # The image point under the pointer stays under it.
    u = (at.x() - fit.x()) / fit.width()
    assert abs(view.view.x() + u * view.view.width() - at.x()) < 1e-6
    before = view.view.topLeft()
    view._drag = QPointF(0, 0)
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent

    move = QMouseEvent(
        QEvent.Type.MouseMove, QPointF(15, -5), QPointF(15, -5),
        Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    view.mouseMoveEvent(move)
    assert view.view.topLeft() == before + QPointF(15, -5)
    view.zoom(0.25, at)  # out past the fit: fitted again
    assert view.view is None
    view.zoom(3.0, at)
    view.mouseDoubleClickEvent(move)
    assert view.view is None
    view.close()
