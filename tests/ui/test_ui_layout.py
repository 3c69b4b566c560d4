"""Every screen at the panel PCs' sizes: nothing outside the window, no text wider than its widget.

Offscreen, with Qt's own font metrics (tests/ui/fit_check.py), after a short run so the screens
show real counters, verdicts and a review queue.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QApplication, QTabWidget
from pytestqt.qtbot import QtBot

from tests.ui.fit_check import misfits
from ui import theme
from ui.app import Gui
from ui.logic.users import Role, User

SIZES = ((1024, 768), (1280, 1024), (1366, 768), (1920, 1080))
#: ``AOI_FIT_SIZES=1366x768,...``: check only these (test_ui_xcb.py runs it in a real X server).
ONLY = [tuple(map(int, s.split("x"))) for s in os.environ.get("AOI_FIT_SIZES", "").split(",") if s]


def _settle(app: QApplication) -> None:
    for _ in range(4):
        app.processEvents()


def _all_misfits(app: QApplication, gui: Gui) -> list[str]:
    w = gui.window
    assert w is not None
    found: list[str] = []
    for key in w.screens:
        assert w.open_screen(key)
        w.refresh()
        _settle(app)
        tabs = [t for t in w.screens[key].findChildren(QTabWidget) if t.isVisibleTo(w)]
        pages = [(t, i) for t in tabs for i in range(t.count())] or [(None, 0)]
        for tab, i in pages:
            if tab is not None:
                tab.setCurrentIndex(i)
                _settle(app)
            found += [f"{key}{f' tab {i}' if tab else ''}: {m}" for m in misfits(w)]
    w.open_screen("operator")
    return found


def test_every_screen_fits_at_every_panel_size(
    qtbot: QtBot, qapp: QApplication, open_gui: Callable[..., Gui], gui_recipe: Path
) -> None:
    gui = open_gui(gui_recipe)
    w = gui.window
    assert w is not None
    runner = gui.station.runner
    assert runner is not None
    w.start_station()
    qtbot.waitUntil(lambda: runner.cycles_done >= 4, timeout=30_000)
    w.stop_station()
    w.log_in(User("layout-test", Role.ADMIN))
    problems: list[str] = []
    scales = []
    for width, height in ONLY or SIZES:
        w.fit_to(width, height)
        _settle(qapp)
        assert w.size() == QSize(width, height), f"the window would not shrink to {width}x{height}"
        scales.append(theme.scale())
        assert w.operator.start_button.isVisibleTo(w) and w.operator.stop_button.isVisibleTo(w)
        problems += [f"{width}x{height} {p}" for p in _all_misfits(qapp, gui)]
    assert not problems, "\n".join(problems)
    # Fonts follow the window's height: larger on a 1080-line panel than on a 768-line one.
    assert ONLY or scales[3] > scales[2]


def test_the_check_catches_clipped_and_outside_text(qapp: QApplication) -> None:
    from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

    window = QWidget()
    layout = QVBoxLayout(window)
    fits = QLabel("fits")
    clipped = QLabel("a label far too long for the forty pixels it was given")
    clipped.setFixedWidth(40)
    wrapped = QLabel("wrapped text in a box of one line height " * 4)
    wrapped.setWordWrap(True)
    wrapped.setFixedSize(120, 20)
    button = QPushButton("Accept with reason")
    button.setFixedWidth(50)
    for w in (fits, clipped, wrapped, button):
        layout.addWidget(w)
    outside = QLabel("outside", window)
    window.resize(300, 200)
    window.show()
    outside.move(280, 10)
    _settle(qapp)
    found = {m.text.split()[0]: m.why for m in misfits(window)}
    assert "fits" not in found
    assert "needs" in found["a"] and "wrapped" in found and "Accept" in found
    assert "outside the window" in found["outside"]
    window.close()
