"""The alarm history table: when each alarm came and cleared, and who acknowledged it when."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui import theme
from ui.logic.alarm_log import AlarmEntry, level_of

COLUMNS = ("Time", "Alarm", "Cleared", "Acknowledged")


def _hms(entry_time: object) -> str:
    return entry_time.astimezone().strftime("%H:%M:%S") if entry_time else ""  # type: ignore[attr-defined]


class AlarmHistory(QWidget):
    """Newest first (read from the database); ``acknowledge_requested(alarm_id)`` when the
    operator signs the selected one, ``older_requested`` for another page of older alarms.

    The selection follows the alarm, not the row: an alarm raised while the operator reads the
    list moves every row down, and the one signed must still be the one they picked."""

    acknowledge_requested = Signal(int)
    older_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(48)  # scrolls: the panel may be small on a 768-line screen
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        # The count and the button sit beside the tabs (``controls``): no extra row of height.
        self.controls = QWidget()
        row = QHBoxLayout(self.controls)
        row.setContentsMargins(0, 0, 0, 2)
        self.note = QLabel("")
        self.note.setObjectName("dim")
        row.addWidget(self.note)
        self.ack_button = QPushButton("Acknowledge")
        self.ack_button.setToolTip("Sign the selected alarm of the history as seen")
        self.ack_button.clicked.connect(self._acknowledge)
        row.addWidget(self.ack_button)
        self.older_button = QPushButton("Show older")
        self.older_button.setToolTip("List older alarms of this station")
        self.older_button.clicked.connect(self.older_requested.emit)
        row.addWidget(self.older_button)
        self.entries: list[AlarmEntry] = []

    def selected(self) -> AlarmEntry | None:
        """The alarm the operator picked, if any."""
        row = self.table.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _acknowledge(self) -> None:
        picked = self.selected()
        if picked is not None:
            self.acknowledge_requested.emit(picked.id)

    def set_entries(self, entries: Sequence[AlarmEntry]) -> None:
        if list(entries) == self.entries:
            return
        picked = self.selected()
        self.entries = list(entries)
        self.table.setRowCount(len(entries))
        for i, e in enumerate(entries):
            acked = f"{e.acked_by} {_hms(e.acked_at)}" if e.acked_by else "—"
            cleared = _hms(e.cleared_at) if e.cleared_at else "active"
            cells = (_hms(e.raised_at), e.text, cleared, acked)
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j == 1:
                    item.setForeground(QColor(theme.LEVEL_COLOUR[level_of(e)]))
                    item.setToolTip(e.cause)
                self.table.setItem(i, j, item)
        at = (
            -1
            if picked is None
            else next((i for i, e in enumerate(self.entries) if e.id == picked.id), -1)
        )
        self.table.setCurrentCell(at, 0)
        waiting = sum(not e.acked_by for e in entries)
        self.note.setText(f"{waiting} not acknowledged" if waiting else "All acknowledged")
