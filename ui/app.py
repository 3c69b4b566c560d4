"""Starting the GUI: the Qt application, the station behind it, and the order things close in.

:class:`Gui` puts the pieces together for ``aoi gui``, its ``--screenshot`` and ``--bench``
modes and the tests: a :class:`~ui.bridge.ResultBridge` subscribed to the station's EventBus, the
:class:`~aoi.app.station.Station`, the users file in the station's data folder, and the main window.
Closing it closes the window first, then the station (cycle, PLC link, event threads, storage).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from aoi.app.arguments import station_options
from aoi.app.station import Station, StationOptions
from aoi.events import Subscriber
from ui.bridge import ResultBridge
from ui.logic.users import UserStore
from ui.main_window import FRAME_INTERVAL_MS, REFRESH_MS, MainWindow

log = logging.getLogger(__name__)

#: While the GUI thread runs Python (painting), a thread of the cycle that waits for the GIL gets
#: it after this long instead of Python's default 5 ms: the screen's work never adds more.
GIL_SWITCH_INTERVAL_S = 0.001


def options_from(args: argparse.Namespace, data_dir: Path | None = None) -> StationOptions:
    """The station ``aoi gui`` asks for (the shared station arguments, then the GUI's own)."""
    return station_options(args, data_dir=data_dir or args.data_dir)


def application(*, offscreen: bool = False) -> QApplication:
    """The process's QApplication (offscreen when asked and no platform is chosen)."""
    if offscreen:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    return app


class Gui:
    """Station + bridge + window, opened and closed together."""

    def __init__(
        self,
        options: StationOptions,
        *,
        refresh_ms: int = REFRESH_MS,
        frame_interval_ms: int = FRAME_INTERVAL_MS,
        subscribers: Sequence[tuple[str, Subscriber]] = (),
    ) -> None:
        self.options = options
        self.bridge = ResultBridge()
        self.station = Station(options, subscribers=[("gui", self.bridge.on_result), *subscribers])
        self.refresh_ms = refresh_ms
        self.frame_interval_ms = frame_interval_ms
        self.window: MainWindow | None = None

    def __enter__(self) -> Gui:
        self.bridge.__enter__()
        try:
            self.station.__enter__()
        except BaseException:
            self.bridge.__exit__(None, None, None)
            raise
        try:
            store = UserStore.in_folder(self.station.data_dir)
            self.window = MainWindow(
                self.station,
                self.bridge,
                store,
                refresh_ms=self.refresh_ms,
                frame_interval_ms=self.frame_interval_ms,
            )
        except BaseException:
            self.station.__exit__(None, None, None)
            self.bridge.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.window is not None:
                self.window.allow_close()
                self.window.close()
                self.window.deleteLater()
        finally:
            try:
                self.station.__exit__(exc_type, exc, tb)
            finally:
                self.bridge.__exit__(None, None, None)


#: The smallest window the screens are laid out for (a 1024x768 panel PC; ``ui.cli`` checks
#: ``--size`` against the same numbers without importing Qt).
MIN_SIZE = (1024, 768)


def show(
    window: MainWindow, app: QApplication, *, size: tuple[int, int] | None, kiosk: bool
) -> None:
    """Show the window: full screen in kiosk mode, else ``size`` or most of the screen."""
    window.setMinimumSize(*MIN_SIZE)
    window.set_kiosk(kiosk)
    if kiosk:
        screen = app.primaryScreen()
        if screen is not None:
            window.fit_to(screen.geometry().width(), screen.geometry().height())
        window.showFullScreen()
        return
    if size is not None:
        window.fit_to(*size)
        window.show()
        # Showing polishes the window anew and may grow it past ``size`` (a 768-line panel
        # got 775): fit again once shown.
        window.fit_to(*size)
        return
    screen = app.primaryScreen()
    avail = screen.availableGeometry() if screen is not None else None
    if avail is not None:
        window.fit_to(max(avail.width(), MIN_SIZE[0]), max(avail.height(), MIN_SIZE[1]))
    window.showMaximized()


def run(args: argparse.Namespace) -> int:
    """``aoi gui`` and its modes."""
    if args.screenshot is not None or args.bench is not None:
        from ui import offscreen

        app = application(offscreen=True)
        with tempfile.TemporaryDirectory(prefix="aoi-gui-") as tmp:
            data_dir = args.data_dir or Path(tmp)
            if args.bench is not None:
                return offscreen.bench(app, args, options_from(args, data_dir))
            return offscreen.screenshots(app, args, options_from(args, data_dir))
    app = application()
    with Gui(options_from(args)) as gui:
        assert gui.window is not None
        show(gui.window, app, size=args.size, kiosk=args.kiosk)
        if args.start:
            gui.window.start_station()
        # systemd's stop (SIGTERM) and Ctrl+C close the window like the close button does.
        asked: list[str] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda n, _f: _quit_on_signal(app, asked, n))
        tick = QTimer()
        tick.start(200)  # lets Python run its signal handlers while Qt waits
        tick.timeout.connect(lambda: None)
        code = app.exec()
        if asked:
            was = "running" if gui.station.running else "stopped"
            gui.station.stop(gui.window.session.name)
            gui.station.audit_quietly("system", "station.state", was, f"stopped: {asked[0]}")
        else:
            gui.station.stop(gui.window.session.name)
    # The station closed (part in flight answered, journal flushed) when Gui's block ended.
    if asked:
        log.warning("aoi gui: station stopped on %s", asked[0])
    return int(code)


def _quit_on_signal(app: QApplication, asked: list[str], signum: int) -> None:
    """A stop signal: note it and leave Qt's event loop; ``run`` closes the station after."""
    name = signal.Signals(signum).name
    if not asked:
        log.warning("aoi gui: %s, stopping the station after the board in flight", name)
        asked.append(name)
    app.quit()
