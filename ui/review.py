"""The review screen: the NG queue, each defect beside the golden template, decided by keyboard.

The queue is the defect log's (``review_queue``): it survives restarts, and a board leaves it when
every defect on it has a decision. C confirms a defect, F marks a false call, A accepts it (a
false call that still needs corrective action, with a reason); the cursor then moves to the next
pending defect. Every decision is written through ``record_review`` under the reviewer's name.
Below, the defect Pareto and the false-call rate of the period (:mod:`ui.review_stats`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aoi.app.station import Station
from aoi.storage import ReviewError, Verification
from aoi.storage.db import DB_ERRORS
from aoi.storage.queries import DefectRecord, InspectionRecord, count_review_queue, review_queue
from ui import theme
from ui.logic.review_data import (
    DECISIONS,
    PAGE,
    REASONS,
    STATE_TEXT,
    CropPair,
    TemplateCache,
    aligned_board,
    crop_pair,
    find_board,
    queue_item_text,
    registration_of,
    unreadable_image_note,
    waiting_text,
)
from ui.review_stats import ReviewStats
from ui.widgets import CropView, local_time, panel
from ui.widgets.basics import ElidedLabel

log = logging.getLogger(__name__)

#: How often an open review screen looks for new NG boards.
POLL_MS = 3000


class ReviewScreen(QWidget):
    """The queue of boards to review, the selected defect's crops, the decision buttons."""

    def __init__(self, station: Station, who: Callable[[], str]) -> None:
        super().__init__()
        self.station = station
        self.who = who
        self.templates = TemplateCache(station.recipes_dir)
        self.boards: list[InspectionRecord] = []
        self.board: InspectionRecord | None = None
        self._aligned: np.ndarray | None = None
        self.waiting = 0
        self._done_at: datetime | None = None
        self._image_note = ""

        root = QVBoxLayout(self)
        root.setContentsMargins(8, 8, 8, 8)
        top = QHBoxLayout()
        root.addLayout(top, 3)

        queue_panel, ql = panel("Boards to review")
        self.queue_count = QLabel("")
        theme.set_font(self.queue_count, 13, bold=True)
        ql.addWidget(self.queue_count)
        find_row = QHBoxLayout()
        self.find_text = QLineEdit()
        self.find_text.setPlaceholderText("Serial or part number")
        self.find_text.returnPressed.connect(self.find)
        find_row.addWidget(self.find_text, 1)
        find_button = QPushButton("Find")
        find_button.clicked.connect(self.find)
        find_row.addWidget(find_button)
        ql.addLayout(find_row)
        self.queue = QListWidget()
        self.queue.setMinimumWidth(200)
        # Long serials end in "…" (whole text in the tooltip): no sideways scroll bar at 1024 px.
        self.queue.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.queue.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.queue.currentRowChanged.connect(self._select_board)
        ql.addWidget(self.queue, 1)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.reload)
        ql.addWidget(refresh)
        top.addWidget(queue_panel, 3)

        middle = QVBoxLayout()
        # Elided, never wider than the middle: a long serial must not widen a 1024-px window.
        self.board_label = ElidedLabel("No board selected")
        theme.set_font(self.board_label, 15, bold=True)
        middle.addWidget(self.board_label)
        crops = QHBoxLayout()
        self.board_view = CropView("Board as inspected")
        self.template_view = CropView("Golden template")
        crops.addWidget(self.board_view)
        crops.addWidget(self.template_view)
        middle.addLayout(crops, 1)
        self.defects = QTableWidget(0, 5)
        self.defects.setHorizontalHeaderLabels(["#", "Class", "Score", "Area px", "Decision"])
        self.defects.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.defects.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.defects.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.defects.verticalHeader().setVisible(False)
        self.defects.horizontalHeader().setStretchLastSection(True)
        self.defects.setMaximumHeight(150)
        for col, width in enumerate((40, 170, 70, 80)):
            self.defects.setColumnWidth(col, width)
        self.defects.currentCellChanged.connect(lambda *_: self._show_defect())
        middle.addWidget(self.defects)
        top.addLayout(middle, 7)

        decide_panel, dl = panel("Decision")
        self.buttons: dict[str, QPushButton] = {}
        for key, text in (
            ("confirm", "Confirm defect   [C]"),
            ("false_call", "False call   [F]"),
            ("accept", "Accept with reason   [A]"),
        ):
            b = QPushButton(text)
            b.setObjectName("decision")
            b.clicked.connect(lambda _=False, k=key: self.decide(k))
            dl.addWidget(b)
            self.buttons[key] = b
        dl.addWidget(QLabel("Reason"))
        self.reason = QComboBox()
        self.reason.setEditable(True)
        self.reason.addItems(REASONS)
        dl.addWidget(self.reason)
        self.decision_note = QLabel("↑/↓ choose a defect; PgDn next board.")
        self.decision_note.setObjectName("dim")
        self.decision_note.setWordWrap(True)
        dl.addWidget(self.decision_note)
        dl.addStretch(1)
        top.addWidget(decide_panel, 3)

        self.stats = ReviewStats(station)
        root.addWidget(self.stats, 2)

        # Window-wide keys, live as soon as the screen shows (no click first); Qt gives them
        # only to the visible screen, and text fields keep their letters (ShortcutOverride).
        for key, name in (("C", "confirm"), ("F", "false_call"), ("A", "accept")):
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(lambda n=name: self.decide(n) if self.isVisible() else None)
        nxt = QShortcut(QKeySequence(Qt.Key.Key_PageDown), self)
        nxt.setContext(Qt.ShortcutContext.WindowShortcut)
        nxt.activated.connect(lambda: self.queue.setCurrentRow(self.queue.currentRow() + 1))
        self._poll = QTimer(self)
        self._poll.timeout.connect(self.poll)

    # -- queue --------------------------------------------------------------------------------

    def _fetch(self) -> list[InspectionRecord] | None:
        db = self.station.storage.db if self.station.storage else None
        if db is None:
            return None
        try:
            station = self.station.config.station_id
            self.waiting = count_review_queue(db, station_id=station)
            return review_queue(db, station_id=station, limit=PAGE, oldest_first=True)
        except DB_ERRORS as err:
            self.queue_count.setText("Database unavailable")
            self._note(str(err).splitlines()[0], ok=False)
            return None

    def poll(self) -> None:
        """New NG boards join the list while the screen is open (the selection stays)."""
        boards = self._fetch()
        if boards is not None and [b.uuid for b in boards] != [b.uuid for b in self.boards]:
            self._show_queue(boards)
        elif boards is not None:  # the same page; more may be waiting beyond it
            self.queue_count.setText(waiting_text(self.waiting, len(boards)))

    def reload(self) -> None:
        """Read the queue from the defect log, keeping the selected board where it can."""
        boards = self._fetch()
        if boards is not None:
            self._show_queue(boards)

    def _show_queue(self, boards: list[InspectionRecord]) -> None:
        keep = self.board.uuid if self.board else None
        self.boards = boards
        scrolled = self.queue.verticalScrollBar().value()
        self.queue.blockSignals(True)
        self.queue.clear()
        for b in boards:
            when = local_time(b.inspected_at).strftime("%H:%M:%S")
            item = QListWidgetItem(queue_item_text(b, when))
            item.setToolTip(item.text())
            item.setForeground(QColor("#ff5a52" if b.verdict == "NG" else "#f2a900"))
            self.queue.addItem(item)
        self.queue.blockSignals(False)
        self.queue.verticalScrollBar().setValue(scrolled)  # arrivals never move the list
        self.queue_count.setText(waiting_text(self.waiting, len(boards)))
        rows = [i for i, b in enumerate(boards) if b.uuid == keep]
        if self._done_at is not None:
            # The board just finished left the queue: the next one after it, in queue order.
            later = [i for i, b in enumerate(boards) if b.inspected_at > self._done_at]
            rows = later[:1] or rows
            self._done_at = None
        if rows:
            self.queue.setCurrentRow(rows[0])
        elif boards:
            self.queue.setCurrentRow(len(boards) - 1 if keep else 0)
        else:
            self._select_board(-1)
        self.stats.refresh()

    def find(self) -> bool:
        """Open the board whose serial (or PLC part number) is typed; True when found."""
        text = self.find_text.text().strip()
        db = self.station.storage.db if self.station.storage else None
        if not text or db is None:
            return False
        station = self.station.config.station_id
        try:
            found = find_board(db, text, station_id=station)
        except DB_ERRORS as err:
            self._note(f"Search failed: {str(err).splitlines()[0]}", ok=False)
            return False
        if found is None:
            self._note(f"No board with serial or part number {text}.", ok=False)
            return False
        rows = [i for i, b in enumerate(self.boards) if b.uuid == found.uuid]
        if rows:
            self.queue.setCurrentRow(rows[0])
        else:  # decided already, or beyond the listed page: shown, not listed
            self.queue.setCurrentRow(-1)
            self._open_board(found)
        self._note(f"Found {text}.", ok=True)
        return True

    def _select_board(self, row: int) -> None:
        self._open_board(self.boards[row] if 0 <= row < len(self.boards) else None)

    def _open_board(self, new: InspectionRecord | None) -> None:
        if new is not None and self.board is not None and new.uuid == self.board.uuid:
            # The same board after a queue refresh: keep its image and the reviewer's place.
            at = self.defects.currentRow()
            self.board = new
            self._fill_defects()
            self.defects.setCurrentCell(at if at >= 0 else self._next_open(-1), 0)
            return
        self.board = new
        self._aligned, self._image_note = None, ""
        self.defects.setRowCount(0)
        if self.board is None:
            self.board_label.set_full_text("No board selected")
            self._show_defect()
            return
        b = self.board
        when = local_time(b.inspected_at).strftime("%Y-%m-%d %H:%M:%S")
        name = b.serial or f"inspection {b.inspection_id}"
        self.board_label.set_full_text(f"{b.verdict} · {name} · {b.recipe_name} · {when}")
        template = self.templates.get(b.recipe_name)
        if b.image_path is None:
            self._image_note = "This board's image was not archived."
        elif template is None:
            self._image_note = f"No golden template for recipe {b.recipe_name}."
        else:
            reg = registration_of(self.station.storage.db, b.uuid) if self.station.storage else None
            size = (template.shape[1], template.shape[0])
            self._aligned = aligned_board(Path(b.image_path), reg, size)
            if self._aligned is None:
                now = datetime.now(UTC)
                self._image_note = unreadable_image_note(Path(b.image_path), b.inspected_at, now)
        self._fill_defects()
        self.defects.setCurrentCell(self._next_open(-1), 0)

    def _fill_defects(self) -> None:
        assert self.board is not None
        self.defects.blockSignals(True)
        self.defects.setRowCount(0)
        for i, d in enumerate(self.board.defects):
            self.defects.insertRow(i)
            cells = [
                str(i + 1),
                d.class_name.replace("_", " "),
                f"{d.score:.2f}",
                str(d.area_px),
                STATE_TEXT.get(d.review_state, d.review_state),
            ]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j == 1:
                    item.setForeground(theme.class_colour(d.class_name))
                self.defects.setItem(i, j, item)
        self.defects.blockSignals(False)

    def _next_open(self, after: int) -> int:
        if self.board is None:
            return -1
        states = [d.review_state for d in self.board.defects]
        for i in list(range(after + 1, len(states))) + list(range(after + 1)):
            if states[i] == Verification.NOT_VERIFIED.value:
                return i
        return -1

    def current_defect(self) -> DefectRecord | None:
        row = self.defects.currentRow()
        if self.board is None or not 0 <= row < len(self.board.defects):
            return None
        return self.board.defects[row]

    def _show_defect(self) -> None:
        d = self.current_defect()
        template = self.templates.get(self.board.recipe_name) if self.board else None
        if d is None or template is None or self._aligned is None:
            note = self._image_note or "Select a defect"
            self.board_view.set_crop(None, None, QColor("#ffffff"), note)
            self.template_view.set_crop(None, None, QColor("#ffffff"), note if d else "")
            return
        pair: CropPair = crop_pair(self._aligned, template, d.bbox_xyxy_px)
        colour = theme.class_colour(d.class_name)
        self.board_view.set_crop(pair.board, pair.box, colour)
        self.template_view.set_crop(pair.template, pair.box, colour)

    # -- decisions ----------------------------------------------------------------------------

    def decide(self, key: str) -> bool:
        """Record the decision ``key`` on the selected defect; True when it was written."""
        d = self.current_defect()
        if d is None or self.board is None or self.station.storage is None:
            return False
        verification, label = DECISIONS[key]
        reason = self.reason.currentText().strip()
        if verification is Verification.ACCEPTED and not reason:
            self._note("Accept needs a reason: choose or type one, then press A.", ok=False)
            self.reason.setFocus()
            return False
        try:
            from aoi.storage.queries import record_review

            record_review(
                self.station.storage.db,
                d.id,
                self.who(),
                verification,
                reason,
                station_id=self.station.config.station_id,
            )
        except (ReviewError, *DB_ERRORS) as err:
            self._note(f"Not saved: {str(err).splitlines()[0]}", ok=False)
            return False
        row = self.defects.currentRow()
        defects = list(self.board.defects)
        defects[row] = DefectRecord(**{**d.__dict__, "review_state": verification.value})
        self.board = InspectionRecord(**{**self.board.__dict__, "defects": tuple(defects)})
        if 0 <= self.queue.currentRow() < len(self.boards):
            self.boards[self.queue.currentRow()] = self.board
        self.defects.item(row, 4).setText(label)
        self._note(f"Defect {row + 1}: {label} by {self.who()}.", ok=True)
        self.reason.setCurrentIndex(0)
        nxt = self._next_open(row)
        if nxt >= 0:
            self.defects.setCurrentCell(nxt, 0)
        else:
            self._done_at = self.board.inspected_at
            self.reload()  # the board is done: it leaves the queue
        self.stats.refresh()
        return True

    def _note(self, text: str, *, ok: bool) -> None:
        self.decision_note.setText(text)
        self.decision_note.setStyleSheet(f"color: {'#7ee2a8' if ok else '#ff8a80'};")

    def showEvent(self, event: object) -> None:  # noqa: N802
        super().showEvent(event)  # type: ignore[arg-type]
        self.reload()
        self._poll.start(POLL_MS)
        self.defects.setFocus()  # arrows move through the defects at once

    def hideEvent(self, event: object) -> None:  # noqa: N802
        super().hideEvent(event)  # type: ignore[arg-type]
        self._poll.stop()
