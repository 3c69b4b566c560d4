"""The review screen's statistics: the defect Pareto and the false-call rate of a period.

The period is this shift, the last 24 hours or the last 7 days; both figures are read from the
defect log of this station, so they include the decisions just made on the review screen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from aoi.app.station import Station
from aoi.storage.db import DB_ERRORS
from aoi.storage.queries import Window, defect_pareto, false_calls
from ui import theme
from ui.logic.words import plural
from ui.widgets import ParetoChart, panel


class ReviewStats(QWidget):
    """The Pareto panel with its period choice, and the false-call panel beside it."""

    def __init__(self, station: Station) -> None:
        super().__init__()
        self.station = station
        bottom = QHBoxLayout(self)
        bottom.setContentsMargins(0, 0, 0, 0)
        self.pareto = ParetoChart()
        pareto_panel, pl = panel("Defect Pareto")
        period = QHBoxLayout()
        self.period = QComboBox()
        self.period.addItems(["This shift", "Last 24 hours", "Last 7 days"])
        self.period.currentIndexChanged.connect(lambda _: self.refresh())
        period.addWidget(self.period)
        period.addStretch(1)
        legend = QLabel("darker part of a bar: false calls  ·  white line: cumulative share")
        legend.setObjectName("dim")
        legend.setWordWrap(True)
        period.addWidget(legend, 1)
        pl.addLayout(period)
        pl.addWidget(self.pareto, 1)
        bottom.addWidget(pareto_panel, 3)
        fc_panel, fl = panel("False calls")
        self.false_call_rate = QLabel("—")
        theme.set_font(self.false_call_rate, 34, bold=True)
        self.false_call_detail = QLabel("")
        self.false_call_detail.setObjectName("dim")
        self.false_call_detail.setWordWrap(True)
        self.false_call_detail.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        fl.addWidget(self.false_call_rate)
        fl.addWidget(self.false_call_detail, 1)
        bottom.addWidget(fc_panel, 2)

    def _window(self) -> Window:
        i = self.period.currentIndex()
        if i == 0:
            since = self.station.counters.shift_started.astimezone(UTC)
        else:
            since = datetime.now(UTC) - timedelta(days=1 if i == 1 else 7)
        return Window(since=since, station_id=self.station.config.station_id)

    def refresh(self) -> None:
        """Read the Pareto and the false calls of the chosen period from the defect log."""
        if self.station.storage is None:
            return
        db, window = self.station.storage.db, self._window()
        try:
            rows = defect_pareto(db, window)
            fc = false_calls(db, window)
        except DB_ERRORS as err:
            self.false_call_detail.setText(f"Database unavailable: {str(err).splitlines()[0]}")
            return
        self.pareto.set_rows(rows)
        if fc.rate is None:
            self.false_call_rate.setText("—")
            self.false_call_detail.setText("No defect reviewed in this period yet.")
            return
        self.false_call_rate.setText(f"{fc.rate:.1%}")
        worst = max(fc.by_class.items(), key=lambda kv: kv[1][1], default=None)
        text = (
            f"{plural(fc.false_calls, 'false call')} of {plural(fc.reviewed, 'reviewed defect')} "
            f"({fc.confirmed} confirmed)."
        )
        if worst and worst[1][1]:
            name, (reviewed, rejected) = worst[0].replace("_", " "), worst[1]
            text += f"\nMost false calls: {name} ({rejected} of {reviewed})."
        if fc.board_rate is not None:
            text += (
                f"\nBoards called NG but good: {fc.false_call_boards} of "
                f"{fc.ng_boards_reviewed} fully reviewed ({fc.board_rate:.0%})."
            )
        self.false_call_detail.setText(text)
