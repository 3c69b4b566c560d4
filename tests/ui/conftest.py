"""Fixtures of the GUI tests: the real station behind the real window, offscreen, and a guard
that fails a test leaving a QThread running (tests/conftest.py guards Python threads)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("PySide6", reason="the gui extra (PySide6) is not installed")

from PySide6.QtCore import QThread, QThreadPool

from aoi.app.station import StationOptions
from ui.app import Gui

RecipeFactory = Callable[..., Path]


@pytest.fixture(autouse=True)
def _no_qthread_left_behind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that leaves a QThread (or a thread-pool task) running, as napari does."""
    started: list[QThread] = []
    original = QThread.start

    def start(self: QThread, *args: object) -> None:
        started.append(self)
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(QThread, "start", start)
    yield
    deadline = time.monotonic() + 10.0
    while any(t.isRunning() for t in started) and time.monotonic() < deadline:
        time.sleep(0.02)
    running = [t.objectName() or repr(t) for t in started if t.isRunning()]
    assert not running, f"test left QThreads running: {running}"
    pool = QThreadPool.globalInstance()
    pool.waitForDone(10_000)
    assert pool.activeThreadCount() == 0, "test left QThreadPool tasks running"


@pytest.fixture
def gui_recipe(make_recipe: RecipeFactory) -> Path:
    """The tiny difference-model recipe; no registration, so boards with defects come out NG."""
    return make_recipe(registration="none")


@pytest.fixture
def open_gui(qapp: object, tmp_path: Path) -> Iterator[Callable[..., Gui]]:
    """Open the GUI on a recipe with the embedded default's parts (soft PLC, SQLite, ONNX CPU)."""
    opened: list[Gui] = []

    def _open(recipe: Path, **options: object) -> Gui:
        defaults: dict[str, object] = {
            "recipe": str(recipe),
            "data_dir": tmp_path / "data",
            "plc": "sim",
            "threads": 1,
        }
        gui = Gui(
            StationOptions(**{**defaults, **options}),  # type: ignore[arg-type]
            refresh_ms=50,
            frame_interval_ms=20,
        )
        gui.__enter__()
        opened.append(gui)
        assert gui.window is not None
        gui.window.resize(1366, 768)
        gui.window.show()
        return gui

    yield _open
    for gui in reversed(opened):
        gui.__exit__(None, None, None)
