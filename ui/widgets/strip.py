"""The last results as a strip of tiles under the live image: one click shows that board again."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QWidget

from aoi.types import InspectionResult
from ui import theme
from ui.widgets.basics import opaque
from ui.widgets.status import fitted

#: Tiles in the strip: about three seconds of a 4 boards/s line.
STRIP_LENGTH = 12


class ResultStrip(QWidget):
    """The last :data:`STRIP_LENGTH` results, oldest left, in verdict colours; ``picked(i)``
    when tile ``i`` (an index into the results given) is clicked."""

    picked = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self._bg = opaque(self, theme.BACKGROUND)
        self.results: list[InspectionResult] = []
        self.selected = -1
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("The last boards: click one to hold it on screen")

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(theme.px(240), theme.px(40))

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(theme.px(600), theme.px(44))

    def set_results(self, results: Sequence[InspectionResult], selected: int = -1) -> None:
        self.results, self.selected = list(results)[-STRIP_LENGTH:], selected
        self.update()

    def _tile(self, i: int) -> QRectF:
        w = self.width() / STRIP_LENGTH
        return QRectF(i * w + 2, 2, w - 4, self.height() - 4)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        i = int(event.position().x() // (self.width() / STRIP_LENGTH))
        if 0 <= i < len(self.results):
            self.picked.emit(i)

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self._bg)
        for i in range(STRIP_LENGTH):
            r = self._tile(i)
            if i >= len(self.results):
                p.setPen(QPen(QColor(theme.PANEL_BORDER), 1, Qt.PenStyle.DashLine))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRoundedRect(r, 4, 4)
                continue
            res = self.results[i]
            p.setPen(QPen(QColor("#ffffff"), 3) if i == self.selected else Qt.PenStyle.NoPen)
            p.setBrush(QColor(theme.VERDICT_BG[res.verdict]))
            p.drawRoundedRect(r, 4, 4)
            p.setPen(QColor(theme.VERDICT_FG[res.verdict]))
            text = str(res.part_sequence or res.inspection_id)
            fitted(p, text, 10, r.width() - 4, bold=True)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
