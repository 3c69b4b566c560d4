"""The main window: the screens, who is logged in, and the two clocks that feed the screens.

Results arrive through :class:`~ui.bridge.ResultBridge` (at most ten display frames a second;
newer ones replace older ones), everything else through a 4 Hz refresh that reads snapshots:
counters, health lights, alarms. Screens that need a role are locked until someone with that
role logs in; the shift operator needs no login.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from PySide6.QtCore import QCoreApplication, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QIcon, QResizeEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from aoi.app.station import Station
from aoi.recipe import CameraSettings
from aoi.runner import RunState
from aoi.storage.db import DB_ERRORS
from ui import theme
from ui.about import AboutButton
from ui.admin import AdminScreen, LoginDialog
from ui.bridge import ResultBridge
from ui.camera_page import CameraPage
from ui.engineer import EngineerScreen
from ui.logic.alarm_log import AlarmLog
from ui.logic.status import station_health
from ui.logic.users import Role, User, UserStore
from ui.logic.words import with_article
from ui.operator import OperatorScreen
from ui.review import ReviewScreen

log = logging.getLogger(__name__)

#: Screen key, navigation label, least role that may open it.
SCREENS: tuple[tuple[str, str, Role], ...] = (
    ("operator", "Operator", Role.OPERATOR),
    ("review", "Review", Role.OPERATOR),
    ("engineer", "Recipes", Role.ENGINEER),
    ("camera", "Camera", Role.ENGINEER),
    ("admin", "Admin", Role.ADMIN),
)
SHIFT_OPERATOR = User("operator", Role.OPERATOR)
#: Counters, chart, lights and alarms are redrawn this often (2 Hz).
REFRESH_MS = 500
#: The live image shows at most one board per this interval (5 Hz); boards in between are
#: counted but not drawn. Each redraw costs the cycle CPU on a small station PC.
FRAME_INTERVAL_MS = 200


@dataclass
class Session:
    user: User = SHIFT_OPERATOR

    @property
    def name(self) -> str:
        return self.user.name

    def may(self, role: Role) -> bool:
        return self.user.role >= role


class MainWindow(QMainWindow):
    access_denied = Signal(str, str)  # screen, why

    def __init__(
        self,
        station: Station,
        bridge: ResultBridge,
        store: UserStore,
        *,
        refresh_ms: int = REFRESH_MS,
        frame_interval_ms: int = FRAME_INTERVAL_MS,
    ) -> None:
        super().__init__()
        self.station = station
        self.bridge = bridge
        self.store = store
        self.session = Session()
        self.frame_interval_ms = frame_interval_ms
        self._last_frame = 0.0
        self.kiosk = False
        self._exit_confirmed = False
        self._fitting = False
        self.setWindowTitle(f"AOI station {station.config.station_id}")
        self.setStyleSheet(theme.style_sheet())
        theme.set_font(self, 11)

        central = QWidget()
        root = QVBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addWidget(self._top_bar())
        self.stack = QStackedWidget()
        self.operator = OperatorScreen(on_image_resize=self._image_resized)
        self.review = ReviewScreen(station, lambda: self.session.name)
        self.engineer = EngineerScreen(station, lambda: self.session.name)
        self.camera = CameraPage(station, self._camera_settings, lambda: self.engineer.path)
        self.camera.golden.saved.connect(self.engineer.open)
        self.admin = AdminScreen(station, store, lambda: self.session.name)
        self.screens: dict[str, QWidget] = {
            "operator": self.operator,
            "review": self.review,
            "engineer": self.engineer,
            "camera": self.camera,
            "admin": self.admin,
        }
        for w in self.screens.values():
            self.stack.addWidget(w)
        root.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        self.operator.start_requested.connect(self.start_station)
        self.operator.reset_requested.connect(self.reset_counters)
        self.operator.stop_requested.connect(self.stop_station)
        self.alarm_log = AlarmLog(station.alarms)
        self.operator.history.acknowledge_requested.connect(self.acknowledge_alarm)
        self.operator.history.older_requested.connect(self.show_older_alarms)
        self.engineer.recipe_activated.connect(self.refresh)
        bridge.result_ready.connect(self._frame_waiting, Qt.ConnectionType.QueuedConnection)
        self._frame_timer = QTimer(self)
        self._frame_timer.setSingleShot(True)
        self._frame_timer.timeout.connect(self._show_newest)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.timeout.connect(self.refresh)
        self.refresh_ms = refresh_ms
        self._refresh_timer.start(refresh_ms)
        self._update_session()
        self.refresh()

    # -- top bar ------------------------------------------------------------------------------

    def _top_bar(self) -> QWidget:
        bar = QWidget()
        bar.setStyleSheet("background: #14181d;")
        row = QHBoxLayout(bar)
        row.setContentsMargins(16, 6, 16, 0)
        brand = QLabel(self.station.config.station_id)
        brand.setToolTip("AOI station")
        theme.set_font(brand, 14, bold=True)
        row.addWidget(brand)
        row.addSpacing(12)
        self._lock = theme.lock_icon()
        self.nav = QButtonGroup(self)
        self.nav.setExclusive(True)
        self.nav_buttons: dict[str, QPushButton] = {}
        for key, label, _role in SCREENS:
            b = QPushButton(label)
            b.setObjectName("nav")
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, k=key: self.request_screen(k))
            self.nav.addButton(b)
            self.nav_buttons[key] = b
            row.addWidget(b)
        row.addStretch(1)
        self.recipe_label = QLabel("")
        theme.set_font(self.recipe_label, 12, bold=True)
        row.addWidget(self.recipe_label)
        row.addSpacing(12)
        self.user_label = QLabel("")
        row.addWidget(self.user_label)
        self.about_button = AboutButton(self.station)
        row.addWidget(self.about_button)
        self.login_button = QPushButton("Log in")
        self.login_button.clicked.connect(self._login_clicked)
        row.addWidget(self.login_button)
        self.exit_button = QPushButton("Exit")
        self.exit_button.setToolTip("Stop the station and close the screen")
        self.exit_button.clicked.connect(self.exit_station)
        self.exit_button.setVisible(False)
        row.addWidget(self.exit_button)
        return bar

    # -- screens and roles --------------------------------------------------------------------

    def current_screen(self) -> str:
        w = self.stack.currentWidget()
        return next(k for k, v in self.screens.items() if v is w)

    def open_screen(self, key: str) -> bool:
        """Show screen ``key`` if the session's role may; False (and ``access_denied``) if not."""
        role = next(r for k, _, r in SCREENS if k == key)
        if not self.session.may(role):
            label = next(n for k, n, _ in SCREENS if k == key)
            why = f"The {label} screen needs {with_article(role.label)} login."
            self.access_denied.emit(key, why)
            self.nav_buttons[self.current_screen()].setChecked(True)
            return False
        self.stack.setCurrentWidget(self.screens[key])
        self.nav_buttons[key].setChecked(True)
        return True

    def request_screen(self, key: str) -> None:
        """A click on a screen's button: log in first where the screen needs it."""
        role = next(r for k, _, r in SCREENS if k == key)
        if not self.session.may(role):
            need = f"This screen needs {with_article(role.label)} login."
            dialog = LoginDialog(self.store, need, self, self.station.audit_quietly)
            dialog.setStyleSheet(theme.style_sheet())
            if dialog.exec() and dialog.user is not None:
                self.log_in(dialog.user)
        self.open_screen(key)

    def _login_clicked(self) -> None:
        if self.session.user is not SHIFT_OPERATOR:
            self.log_out()
            return
        dialog = LoginDialog(self.store, "", self, self.station.audit_quietly)
        dialog.setStyleSheet(theme.style_sheet())
        if dialog.exec() and dialog.user is not None:
            self.log_in(dialog.user)

    def log_in(self, user: User) -> None:
        old = self.session.name
        self.session = Session(user)
        self.station.audit_quietly(user.name, "session", old, f"{user.name} ({user.role.label})")
        self._update_session()

    def log_out(self) -> None:
        old = self.session.name
        self.session = Session()
        self.station.audit_quietly(old, "session", old, SHIFT_OPERATOR.name)
        self._update_session()
        if not self.session.may(next(r for k, _, r in SCREENS if k == self.current_screen())):
            self.open_screen("operator")

    def _update_session(self) -> None:
        u = self.session.user
        self.user_label.setText(u.name)
        self.user_label.setToolTip(f"{u.name} · {u.role.label}")
        self.login_button.setText("Log out" if u is not SHIFT_OPERATOR else "Log in")
        for key, _label, role in SCREENS:
            locked = not self.session.may(role)
            b = self.nav_buttons[key]
            b.setIcon(self._lock if locked else QIcon())
            b.setStyleSheet("color: #6b7580;" if locked else "")
            b.setToolTip(f"Needs a {role.label} login" if locked else "")

    # -- commands -------------------------------------------------------------------------------

    def start_station(self) -> None:
        self.station.start(self.session.name)
        self.refresh()

    def stop_station(self) -> None:
        self.station.stop(self.session.name)
        self.refresh()

    def acknowledge_alarm(self, alarm_id: int) -> None:
        """Sign alarm ``alarm_id`` of the history as seen by whoever is logged in (audited)."""
        try:
            entry = self.alarm_log.acknowledge(alarm_id, self.session.name)
        except DB_ERRORS as err:
            log.warning("acknowledgement not written: %s", err)
            return
        if entry is not None:
            self.operator.history.set_entries(self.alarm_log.entries)

    def show_older_alarms(self) -> None:
        self.alarm_log.show_older()
        self.operator.history.set_entries(self.alarm_log.entries)

    def reset_counters(self) -> bool:
        """Zero the shift's counts: an engineer's decision, audited with the counts it drops."""
        if not self.session.may(Role.ENGINEER):
            self.access_denied.emit("operator", "Resetting the counters needs an engineer login.")
            return False
        c = self.station.counters.reset()
        old = f"{c.inspected} boards: {c.ok} OK, {c.ng} NG, {c.review} review, {c.error} error"
        self.station.audit_quietly(self.session.name, f"counters {c.shift}", old, "reset")
        return True

    def _camera_settings(self) -> CameraSettings:
        v = self.engineer.validation
        if v is not None and v.recipe is not None:
            return v.recipe.camera
        active = self.station.active_recipe
        return active.recipe.camera if active else CameraSettings()

    def _image_resized(self, width: int, height: int) -> None:
        self.bridge.fit = (width, height)

    # -- the two clocks ----------------------------------------------------------------------------

    def _frame_waiting(self) -> None:
        if self._frame_timer.isActive():
            return
        wait_ms = self.frame_interval_ms - (time.monotonic() - self._last_frame) * 1000
        self._frame_timer.start(max(0, int(wait_ms)))

    def _show_newest(self) -> None:
        frame = self.bridge.take()
        if frame is not None:
            self._last_frame = time.monotonic()
            self.operator.show_frame(frame)

    def refresh(self) -> None:
        s = self.station
        active = s.active_recipe
        if active is not None:
            r = active.recipe
            text = f"{r.name} v{r.version} · code {r.product_code}"
            tip = f"Recipe {r.name}, version {r.version}, product code {r.product_code}"
        else:
            text = tip = f"{s.loaded_at_start.name}: not loaded"
        self.recipe_label.setText(text)
        self.recipe_label.setToolTip(tip)
        runner = s.runner
        state = runner.state if runner is not None else RunState.STOPPED
        fault = runner.fault if runner is not None else ""
        health = station_health(s)
        if self.alarm_log.update():
            self.operator.history.set_entries(self.alarm_log.entries)
        self.operator.refresh(health, state, runner is not None, fault)
        if self.stack.currentWidget() is self.engineer:
            self.engineer.update_activate()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        # Fonts follow the window's size: arm's length on a 1080-line panel, still fitting 768.
        size = event.size()
        if not self._fitting and theme.set_scale(theme.scale_for(size.width(), size.height())):
            theme.rescale(self)
        super().resizeEvent(event)

    def fit_to(self, width: int, height: int) -> None:
        """Resize to ``width`` x ``height`` with fonts scaled for that size first (so the
        layout's minimum is the small one when the window is made small)."""
        self._fitting = True
        try:
            if theme.set_scale(theme.scale_for(width, height)):
                theme.rescale(self)
            # Style sheets apply on the next polish: do it now, so the minimum is the new one.
            for w in (self, *self.findChildren(QWidget)):
                w.ensurePolished()
            # Layout requests posted by the new fonts may grow the window meanwhile (to the
            # old, larger minimum): handle them, then ask for the size again.
            for _ in range(3):
                self.resize(width, height)
                QCoreApplication.sendPostedEvents()
                if (self.width(), self.height()) == (width, height):
                    break
        finally:
            self._fitting = False

    def set_kiosk(self, on: bool) -> None:
        """Kiosk: full screen, no frame; closing needs an engineer's login or the Exit button."""
        self.kiosk = on
        shown = self.isVisible()
        self.setWindowFlag(Qt.WindowType.FramelessWindowHint, on)
        if shown:  # changing a window's flags hides it
            self.show()
        self.exit_button.setVisible(on)

    def allow_close(self) -> None:
        """Let the next close through, kiosk or not (the application is ending)."""
        self._exit_confirmed = True

    def exit_station(self) -> None:
        """The GUI's own exit (kiosk): stop the station, then close."""
        if self.kiosk and not self.session.may(Role.ENGINEER):
            runner = self.station.runner
            if runner is not None and runner.state is RunState.RUNNING:
                self.access_denied.emit("exit", "Stop the station before leaving, or log in.")
                return
        self.station.stop(self.session.name)
        self._exit_confirmed = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.kiosk and not self._exit_confirmed and not self.session.may(Role.ENGINEER):
            # A stray Alt+F4 or touch must not take the line's screen away.
            log.info("close refused in kiosk mode: needs the Exit button or an engineer login")
            self.access_denied.emit("exit", "Use Exit (stops the station) or log in as engineer.")
            event.ignore()
            return
        self._refresh_timer.stop()
        self._frame_timer.stop()
        self.engineer.shutdown()
        super().closeEvent(event)
