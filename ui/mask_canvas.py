"""The recipe editor's mask canvas: the golden template with its don't-care masks, drawn by drag.

Masks are the recipe's raw dicts (``x0 y0 x1 y1`` in template pixels); the canvas only shows them
and reports a new rectangle through ``drawn``; the form owns the list and the edits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QWidget

from ui import theme
from ui.widgets import fit_rect, to_qimage


class MaskCanvas(QWidget):
    """The golden template with the don't-care masks; drag a rectangle to add one."""

    drawn = Signal(int, int, int, int)

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumSize(360, 360)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.template: QImage | None = None
        self.size_px = (1, 1)
        self.masks: list[dict[str, Any]] = []
        self.selected = -1
        self._drag: tuple[QPointF, QPointF] | None = None

    def set_template(self, template: np.ndarray | None) -> None:
        self.template = to_qimage(template) if template is not None else None
        if template is not None:
            self.size_px = (template.shape[1], template.shape[0])
        self.update()

    def _target(self) -> QRectF:
        return fit_rect(
            self.size_px[0], self.size_px[1], QRectF(self.rect()).adjusted(4, 4, -4, -4)
        )

    def _to_px(self, pt: QPointF) -> tuple[int, int]:
        t = self._target()
        s = self.size_px[0] / t.width()
        x = round((pt.x() - t.x()) * s)
        y = round((pt.y() - t.y()) * s)
        return min(max(0, x), self.size_px[0]), min(max(0, y), self.size_px[1])

    def mousePressEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        self._drag = (e.position(), e.position())

    def mouseMoveEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        if self._drag is not None:
            self._drag = (self._drag[0], e.position())
            self.update()

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            return
        (x0, y0), (x1, y1) = self._to_px(self._drag[0]), self._to_px(e.position())
        self._drag = None
        self.update()
        if abs(x1 - x0) >= 2 and abs(y1 - y0) >= 2:
            self.drawn.emit(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#0d1014"))
        if self.template is None:
            p.setPen(QColor(theme.TEXT_DIM))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No template image")
            return
        t = self._target()
        p.drawImage(t, self.template)
        s = t.width() / self.size_px[0]
        for i, m in enumerate(self.masks):
            rect = QRectF(
                t.x() + m["x0"] * s,
                t.y() + m["y0"] * s,
                (m["x1"] - m["x0"]) * s,
                (m["y1"] - m["y0"]) * s,
            )
            colour = QColor("#4aa3ff") if i == self.selected else QColor("#f2a900")
            fill = QColor(colour)
            fill.setAlpha(70)
            p.fillRect(rect, fill)
            p.setPen(QPen(colour, 2))
            p.drawRect(rect)
            p.setFont(theme.font(10, bold=True))
            p.drawText(rect.adjusted(4, 2, 0, 0), Qt.AlignmentFlag.AlignLeft, str(i + 1))
        if self._drag is not None:
            p.setPen(QPen(QColor("#4aa3ff"), 2, Qt.PenStyle.DashLine))
            p.drawRect(QRectF(self._drag[0], self._drag[1]).normalized())
