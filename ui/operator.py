"""The operator screen: what the station is doing, readable from two metres away.

Left, the live board with its defects boxed; right, the last verdict in large letters, the
shift's counters and first-pass yield, cycle times against the budget, the four health lights,
and the alarms with what to do about each. START and STOP sit under the image.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from aoi.runner import RunState
from aoi.types import Defects, InspectionResult, Verdict
from ui import theme
from ui.bridge import DisplayFrame
from ui.logic.health import Level
from ui.logic.status import StationHealth
from ui.logic.words import error_for_operator
from ui.widgets import CounterTile, CycleChart, ImageView, LightView, VerdictBanner, panel
from ui.widgets.alarm_history import AlarmHistory
from ui.widgets.basics import ElidedLabel
from ui.widgets.strip import STRIP_LENGTH, ResultStrip

STATE_TEXT = {
    RunState.STOPPED: ("STOPPED", "Press START to inspect; the line sees the station offline."),
    RunState.RUNNING: ("RUNNING", "Inspecting every board the line triggers."),
    RunState.STOPPING: ("STOPPING", "Finishing the board in flight."),
    RunState.FAULT: ("FAULT", ""),
}


def verdict_detail(r: InspectionResult) -> str:
    """One line under the verdict: which defects, or why the board was not inspected."""

    def names(defects: Defects) -> str:
        return grouped_summary([(d.class_name, d.score) for d in defects])

    if r.verdict is Verdict.NG:
        n = len(r.defects)
        return f"{n} defect{'s' if n != 1 else ''}: {names(r.defects)}"
    if r.verdict is Verdict.REVIEW:
        items = r.review_defects or r.defects
        return f"Check by eye: {names(items)}"
    if r.verdict is Verdict.ERROR:
        return error_for_operator(r)
    return "No defects"


def grouped_summary(defects: Sequence[tuple[str, float]], most: int = 3) -> str:
    """Defects by class, most first: "spurious copper x3, short 0.99" (a lone one keeps its
    score); at most ``most`` classes, then "…"."""
    groups: dict[str, list[float]] = {}
    for name, score in defects:
        groups.setdefault(name.replace("_", " "), []).append(score)
    order = sorted(groups.items(), key=lambda kv: (-len(kv[1]), -max(kv[1])))
    parts = [f"{n} x{len(s)}" if len(s) > 1 else f"{n} {s[0]:.2f}" for n, s in order[:most]]
    return ", ".join(parts) + (" …" if len(order) > most else "")


def _clip(text: str, chars: int = 150) -> str:
    """Long causes (file paths, library messages) shortened; the light's tooltip has them all."""
    text = " ".join(text.split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def per_recipe_line(by_recipe: Sequence[tuple[str, int, int]]) -> str:
    """``Per recipe: A 412 boards, yield 98.1% · B 10, 90.0%`` (most boards first)."""
    if not by_recipe:
        return "Per recipe: no board this shift yet"
    parts = [
        f"{name} {boards}{' boards' if i == 0 else ''}, {'yield ' if i == 0 else ''}"
        f"{ok / boards:.1%}"
        for i, (name, boards, ok) in enumerate(by_recipe)
    ]
    return "Per recipe: " + " · ".join(parts)


class OperatorScreen(QWidget):
    start_requested = Signal()
    stop_requested = Signal()
    reset_requested = Signal()

    def __init__(self, on_image_resize: Callable[[int, int], None] | None = None) -> None:
        super().__init__()
        root = QHBoxLayout(self)
        root.setContentsMargins(8, 8, 8, 8)
        root.setSpacing(8)

        left = QVBoxLayout()
        self.image = ImageView("Press START: the live board appears here", on_image_resize)
        left.addWidget(self.image, 1)
        strip_row = QHBoxLayout()
        self.hold = QCheckBox("Hold last NG")
        self.hold.setChecked(True)
        self.hold.setToolTip("Keep the last NG board on screen while good boards pass")
        self.hold.toggled.connect(lambda _on: self.follow_live())
        strip_row.addWidget(self.hold)
        self.strip = ResultStrip()
        self.strip.picked.connect(self.pick)
        strip_row.addWidget(self.strip, 1)
        self.live_button = QPushButton("Live")
        self.live_button.setToolTip("Show the newest board again")
        self.live_button.clicked.connect(self.follow_live)
        strip_row.addWidget(self.live_button)
        left.addLayout(strip_row)
        #: The last boards shown (display frames), for the strip; a picked one stays on screen.
        self.recent: deque[DisplayFrame] = deque(maxlen=STRIP_LENGTH)
        self.pinned: DisplayFrame | None = None
        self.last_ng: DisplayFrame | None = None
        self.on_image: DisplayFrame | None = None
        controls = QHBoxLayout()
        self.start_button = QPushButton("START")
        self.start_button.setObjectName("start")
        self.stop_button = QPushButton("STOP")
        self.stop_button.setObjectName("stop")
        for b in (self.start_button, self.stop_button):
            b.setMinimumHeight(52)
            b.setMinimumWidth(120)
            controls.addWidget(b, 2)
        self.start_button.clicked.connect(self.start_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        state_box = QVBoxLayout()
        self.state_label = QLabel("STOPPED")
        theme.set_font(self.state_label, 20, bold=True)
        self.state_hint = QLabel("")
        self.state_hint.setObjectName("dim")
        self.state_hint.setWordWrap(True)
        state_box.addWidget(self.state_label)
        state_box.addWidget(self.state_hint)
        controls.addSpacing(8)
        controls.addLayout(state_box, 3)
        left.addLayout(controls)
        root.addLayout(left, 11)

        right = QVBoxLayout()
        right.setSpacing(6)
        self.verdict = VerdictBanner()
        right.addWidget(self.verdict)

        counters_panel, counters_layout = panel("Shift")
        self.shift_label = QLabel("")
        self.shift_label.setObjectName("dim")
        # The shift's name on the title's line: one line less for a 768-line screen.
        title_row = QHBoxLayout()
        title_row.addWidget(counters_layout.takeAt(0).widget())
        # Counts and yield per recipe of this shift (a shift may run several), on the title's
        # line too: on the screen, not in a tooltip, at no cost in height.
        self.recipe_line = ElidedLabel("")
        self.recipe_line.setObjectName("dim")
        title_row.addSpacing(8)
        title_row.addWidget(self.recipe_line, 1)
        title_row.addWidget(self.shift_label)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Zero the shift's counts (engineer login; audited)")
        self.reset_button.clicked.connect(self.reset_requested)
        # As tall as the title's line: the counters keep their room on a 768-line panel.
        self.reset_button.setStyleSheet("padding: 0px 8px; min-height: 0px;")
        self.reset_button.setMaximumHeight(self.shift_label.sizeHint().height() + 2)
        title_row.addWidget(self.reset_button)
        counters_layout.insertLayout(0, title_row)
        row = QHBoxLayout()
        row.setSpacing(2)
        self.tiles = {
            "boards": CounterTile("Boards"),
            "ok": CounterTile("OK", theme.VERDICT_BG[Verdict.OK]),
            "ng": CounterTile("NG", "#ff5a52"),
            "review": CounterTile("Review", theme.VERDICT_BG[Verdict.REVIEW]),
            "error": CounterTile("Error", "#b68cf0"),
            "fpy": CounterTile("First-pass yield", "#ffffff"),
        }
        for key, tile in self.tiles.items():
            row.addWidget(tile, 2 if key == "fpy" else 1)
        counters_layout.addLayout(row)
        right.addWidget(counters_panel)

        self.chart = CycleChart()
        self.chart_panel, _ = panel("Cycle time", self.chart)
        right.addWidget(self.chart_panel)

        lights_panel, lights_layout = panel("Health")
        grid = QGridLayout()
        self.lights = {name: LightView(name) for name in ("Camera", "Engine", "PLC", "Database")}
        for i, view in enumerate(self.lights.values()):
            grid.addWidget(view, i // 2, i % 2)
        lights_layout.addLayout(grid)
        right.addWidget(lights_panel)

        self.alarms = QListWidget()
        self.alarms.setWordWrap(True)
        self.alarms.setMinimumHeight(48)
        self.history = AlarmHistory()
        self.alarm_tabs = QTabWidget()
        self.alarm_tabs.addTab(self.alarms, "Now")
        self.alarm_tabs.addTab(self.history, "History")
        self.alarm_tabs.setCornerWidget(self.history.controls)
        # The history lends itself the chart's height while it is shown: a dozen rows instead
        # of two on a 768-line panel; "Now" brings the chart back.
        self.alarm_tabs.currentChanged.connect(
            lambda i: self.chart_panel.setVisible(self.alarm_tabs.widget(i) is not self.history)
        )
        alarms_panel, _ = panel("Alarms", self.alarm_tabs)
        right.addWidget(alarms_panel, 1)
        root.addLayout(right, 9)

    # -- updates (GUI thread) ----------------------------------------------------------------

    def show_frame(self, frame: DisplayFrame) -> None:
        """A new board: the banner always shows it; the image unless a board is held."""
        r = frame.result
        self.recent.append(frame)
        if r.verdict is Verdict.NG:
            self.last_ng = frame
        if self.pinned is not None:
            pass  # the operator picked a board from the strip: it stays
        elif self.hold.isChecked() and self.last_ng is not None:
            self._put_on_image(self.last_ng, held=self.last_ng is not frame)
        else:
            self._put_on_image(frame, held=False)
        self._update_strip()
        part = f"Part {r.part_sequence}" if r.part_sequence else f"Board {r.inspection_id}"
        if r.serial:
            part += f" · {r.serial}"
        part += f" · {r.cycle_ms:.1f} ms" + (" (over budget)" if r.over_budget else "")
        self.verdict.set_verdict(r.verdict, verdict_detail(r), part)
        self.verdict.setToolTip(r.verdict_reason or r.error)  # why, in full, on hover

    def pick(self, index: int) -> None:
        """A click on the strip: hold that board on screen until Live."""
        frames = list(self.recent)[-STRIP_LENGTH:]
        if 0 <= index < len(frames):
            self.pinned = frames[index]
            self._put_on_image(self.pinned, held=True)
            self._update_strip()

    def follow_live(self) -> None:
        """Back to the newest board (the last NG still holds while "Hold last NG" is on)."""
        self.pinned = None
        if not self.hold.isChecked():
            self.last_ng = None
        newest = self.recent[-1] if self.recent else None
        shown = self.last_ng if self.hold.isChecked() and self.last_ng is not None else newest
        if shown is not None:
            self._put_on_image(shown, held=shown is not newest)
        self._update_strip()

    def _put_on_image(self, frame: DisplayFrame, *, held: bool) -> None:
        if frame is not self.on_image:
            self.image.set_frame(frame)
            self.on_image = frame
        r = frame.result
        caption = ""
        if held:
            part = f"part {r.part_sequence}" if r.part_sequence else f"board {r.inspection_id}"
            caption = f"HELD: {r.verdict.name} {part}" + (f" · {r.serial}" if r.serial else "")
            caption += " · press Live for the newest board"
        self.image.set_caption(caption)

    def _update_strip(self) -> None:
        frames = list(self.recent)
        on = [i for i, f in enumerate(frames) if f is self.on_image]
        self.strip.set_results([f.result for f in frames], on[0] if on else -1)

    def refresh(self, health: StationHealth, state: RunState, can_start: bool, fault: str) -> None:
        c = health.counters
        self.shift_label.setText(c.shift)
        self.recipe_line.set_full_text(per_recipe_line(c.by_recipe))
        self.tiles["boards"].set_value(str(c.inspected))
        self.tiles["ok"].set_value(str(c.ok))
        self.tiles["ng"].set_value(str(c.ng))
        self.tiles["review"].set_value(str(c.review))
        self.tiles["error"].set_value(str(c.error))
        self.tiles["fpy"].set_value("—" if c.fpy is None else f"{c.fpy:.1%}")
        self.chart.set_snapshot(c)
        for light in health.lights:
            self.lights[light.name].set_light(light)
        self._set_alarms(health)
        word, hint = STATE_TEXT[state]
        self.verdict.set_state("" if state is RunState.RUNNING else word)
        if state is RunState.FAULT:
            hint = fault
        elif not can_start and state is RunState.STOPPED:
            hint = "Cannot start: no recipe is loaded (see the Engine and Camera lights)."
        if self.state_label.text() != word:
            self.state_label.setText(word)
            colour = {RunState.RUNNING: "#2ecc71", RunState.FAULT: "#ff3b30"}.get(
                state, theme.TEXT_DIM
            )
            self.state_label.setStyleSheet(f"color: {colour};")
        self.state_hint.setText(hint)
        self.start_button.setEnabled(can_start and state in (RunState.STOPPED, RunState.FAULT))
        self.stop_button.setEnabled(state is RunState.RUNNING)

    def _set_alarms(self, health: StationHealth) -> None:
        texts = [
            (a.level, f"{a.source}: {a.title}" + (f"\n→ {a.action}" if a.action else ""))
            for a in health.alarms
        ]
        causes = {
            text: _clip(a.cause, 400) for a, (_, text) in zip(health.alarms, texts, strict=False)
        }
        current = [
            (Level(self.alarms.item(i).data(Qt.ItemDataRole.UserRole)), self.alarms.item(i).text())
            for i in range(self.alarms.count())
        ]
        if not texts:
            texts = [(Level.OK, "No alarms")]
        if texts == current:
            return
        self.alarms.clear()
        for level, text in texts:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, int(level))
            item.setForeground(QColor(theme.LEVEL_COLOUR[level]))
            item.setFont(theme.font(12, bold=level >= Level.FAULT))
            item.setToolTip(causes.get(text, ""))
            self.alarms.addItem(item)
