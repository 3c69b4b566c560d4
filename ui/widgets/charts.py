"""Charts drawn with QPainter (no QtCharts): recent cycle times, and the defect Pareto."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QWidget

from aoi.runner import CounterSnapshot
from aoi.storage.queries import ParetoRow
from ui import theme
from ui.widgets.basics import opaque


def nice_ticks(top: float, most: int = 5) -> list[float]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to ``top``, at most ``most``."""
    step = 1.0
    while top / step > most - 1:
        for m in (2.0, 2.5, 2.0):  # 1 -> 2 -> 5 -> 10 -> 20 ...
            step *= m
            if top / step <= most - 1:
                break
    n = int(top // step)
    return [i * step for i in range(n + 1)]


def window_percentiles(values: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 of the cycle times shown (nearest-rank, as the bars are counted)."""
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]

    return rank(0.50), rank(0.99)


class CycleChart(QWidget):
    """Recent cycle times as bars against the budget line, with p50 and p99 marked."""

    def __init__(self) -> None:
        super().__init__()
        self._bg = opaque(self, theme.PANEL)
        self.snapshot: CounterSnapshot | None = None

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(theme.px(240), theme.px(110))

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(theme.px(400), theme.px(150))

    def set_snapshot(self, snapshot: CounterSnapshot) -> None:
        self.snapshot = snapshot
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect())
        p.fillRect(r, self._bg)
        plot = r.adjusted(46, 26, -8, -20)
        p.fillRect(plot, QColor("#14181d"))
        s = self.snapshot
        p.setFont(theme.font(10))
        if s is None or not s.recent_ms:
            p.setPen(QColor(theme.TEXT_DIM))
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "No cycles yet")
            return
        top = max(s.budget_ms * 1.25, max(s.recent_ms) * 1.05)

        def y(ms: float) -> float:
            return plot.bottom() - min(ms, top) / top * plot.height()

        n = len(s.recent_ms)
        slots = max(n, 60)
        bw = plot.width() / slots
        ok, over = QColor("#4aa3ff"), QColor("#ff3b30")
        for i, (ms, late) in enumerate(zip(s.recent_ms, s.recent_over, strict=True)):
            x = plot.right() - (n - i) * bw
            p.fillRect(
                QRectF(x + bw * 0.12, y(ms), bw * 0.76, plot.bottom() - y(ms)), over if late else ok
            )
        for ms in nice_ticks(top):
            p.setPen(QPen(QColor("#2c333c"), 1))
            p.drawLine(QPointF(plot.left(), y(ms)), QPointF(plot.right(), y(ms)))
            p.setPen(QColor(theme.TEXT_DIM))
            p.drawText(QRectF(0, y(ms) - 9, 42, 18), Qt.AlignmentFlag.AlignRight, f"{ms:g}")
        # p50/p99 of the bars drawn (not of the runner's longer window): the lines describe
        # exactly what the eye sees.
        p50, p99 = window_percentiles(s.recent_ms)
        lines = [
            (p99, "#f2a900", f"p99 {p99:.1f}", Qt.PenStyle.DashLine, 2),
            (p50, "#2ecc71", f"p50 {p50:.1f}", Qt.PenStyle.DashLine, 2),
            # The budget last and wider, so it stays visible where a percentile lies on it.
            (s.budget_ms, "#ff3b30", f"budget {s.budget_ms:.0f} ms", Qt.PenStyle.SolidLine, 3),
        ]
        for ms, colour, _text, style, width in lines:
            p.setPen(QPen(QColor(colour), width, style))
            p.drawLine(QPointF(plot.left(), y(ms)), QPointF(plot.right(), y(ms)))
        # The legend above the plot, so labels never sit on top of each other.
        p.setFont(theme.font(10, bold=True))
        x = plot.left()
        for _ms, colour, text, _style, _width in reversed(lines):
            p.setPen(QColor(colour))
            p.drawText(QRectF(x, 2, 200, 20), Qt.AlignmentFlag.AlignLeft, text)
            x += p.fontMetrics().horizontalAdvance(text) + 24
        p.setPen(QColor(theme.TEXT_DIM))
        p.setFont(theme.font(9))
        p.drawText(
            QRectF(plot.left(), plot.bottom() + 2, plot.width(), 18),
            Qt.AlignmentFlag.AlignRight,
            f"last {n} boards (ms), p50/p99 of these; over budget this shift: {s.over_budget}",
        )


class ParetoChart(QWidget):
    """Defects per class, most frequent first, in class colours, with the cumulative share."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(180)
        self._bg = opaque(self, theme.PANEL)
        self.rows: list[ParetoRow] = []

    def set_rows(self, rows: Sequence[ParetoRow]) -> None:
        self.rows = list(rows)
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect())
        p.fillRect(r, self._bg)
        plot = r.adjusted(36, 8, -40, -40)
        p.fillRect(plot, QColor("#14181d"))
        p.setFont(theme.font(10))
        if not self.rows:
            p.setPen(QColor(theme.TEXT_DIM))
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "No defects in this period")
            return
        top = max(row.count for row in self.rows)
        n = len(self.rows)
        bw = plot.width() / n
        path = QPainterPath()
        for i, row in enumerate(self.rows):
            h = row.count / top * (plot.height() - 16)
            bar = QRectF(plot.left() + i * bw + bw * 0.15, plot.bottom() - h, bw * 0.7, h)
            p.fillRect(bar, theme.class_colour(row.class_name))
            if row.false_calls:  # the false-call part of the bar, hatched
                fh = row.false_calls / top * (plot.height() - 16)
                p.fillRect(
                    QRectF(bar.left(), plot.bottom() - fh, bar.width(), fh), QColor(0, 0, 0, 110)
                )
            p.setPen(QColor(theme.TEXT))
            p.drawText(
                QRectF(bar.left() - 10, bar.top() - 18, bar.width() + 20, 16),
                Qt.AlignmentFlag.AlignCenter,
                str(row.count),
            )
            p.setPen(QColor(theme.TEXT_DIM))
            p.drawText(
                QRectF(plot.left() + i * bw, plot.bottom() + 4, bw, 34),
                Qt.AlignmentFlag.AlignHCenter | Qt.TextFlag.TextWordWrap,
                row.class_name.replace("_", " "),
            )
            pt = QPointF(
                plot.left() + (i + 0.5) * bw, plot.bottom() - row.cumulative * plot.height()
            )
            if i == 0:
                path.moveTo(pt)
            else:
                path.lineTo(pt)
        p.setPen(QPen(QColor("#ffffff"), 2))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawPath(path)

        p.setPen(QColor(theme.TEXT_DIM))
        for share in (0.5, 1.0):
            yy = plot.bottom() - share * plot.height()
            p.drawText(
                QRectF(plot.right() + 4, yy - 8, 36, 16), Qt.AlignmentFlag.AlignLeft, f"{share:.0%}"
            )
