"""The station's own widgets, drawn with QPainter: image with defect boxes, verdict, lights, charts.

Small and dependency-free (no QtCharts): each widget takes plain data (a display frame, a light,
a counter snapshot, Pareto rows) and paints it, large enough to read from two metres away.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QResizeEvent
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from aoi.runner import CounterSnapshot
from aoi.storage.queries import ParetoRow
from aoi.types import Verdict
from ui import theme
from ui.bridge import DisplayBox, DisplayFrame
from ui.health import Level, Light

_FORMATS = {
    1: QImage.Format.Format_Grayscale8,
    3: QImage.Format.Format_RGB888,
    4: QImage.Format.Format_RGB32,  # BGRA bytes: what the screen's backing store holds
}


def to_qimage(image: np.ndarray, *, copy: bool = True) -> QImage:
    """A QImage of a uint8 grey, RGB or BGRA array; without ``copy`` it borrows the array's
    memory, so the caller keeps the array alive as long as the image."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    q = QImage(image.data, w, h, image.strides[0], _FORMATS[channels])
    return q.copy() if copy else q


def local_time(t: datetime) -> datetime:
    """A time from the database in the PC's zone (SQLite gives naive UTC, PostgreSQL aware)."""
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone()


def panel(title: str, body: QWidget | None = None) -> tuple[QFrame, QVBoxLayout]:
    """A framed panel with a small capitalised title; returns it and its layout."""
    frame = QFrame()
    frame.setObjectName("panel")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(10, 8, 10, 10)
    layout.setSpacing(6)
    label = QLabel(title.upper())
    label.setObjectName("title")
    layout.addWidget(label)
    if body is not None:
        layout.addWidget(body)
    return frame, layout


def opaque(widget: QWidget, background: str) -> QColor:
    """Mark a widget that paints every pixel itself, so Qt never repaints (style-sheeted)
    parents beneath it; returns the colour its paintEvent fills with first."""
    widget.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
    return QColor(background)


def fit_rect(image_w: int, image_h: int, area: QRectF) -> QRectF:
    """Where an image goes inside ``area``, scaled to fit and centred."""
    s = min(area.width() / image_w, area.height() / image_h)
    w, h = image_w * s, image_h * s
    return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)


def draw_box(
    p: QPainter, rect: QRectF, colour: QColor, label: str, *, dashed: bool, bounds: QRectF
) -> None:
    """A defect box with its label on a filled tab above it (below at the top edge), the tab
    kept inside ``bounds``."""
    pen = QPen(colour, 3)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawRect(rect)
    if not label:
        return
    p.setFont(theme.font(10, bold=True))
    metrics = p.fontMetrics()
    tw, th = metrics.horizontalAdvance(label) + 8, metrics.height() + 2
    y = rect.top() - th if rect.top() - th >= bounds.top() else rect.bottom()
    x = min(max(rect.left() - 1.5, bounds.left()), bounds.right() - tw)
    tab = QRectF(x, y, tw, th)
    p.fillRect(tab, colour)
    p.setPen(QColor("#000000"))
    p.drawText(tab, Qt.AlignmentFlag.AlignCenter, label)


class ImageView(QWidget):
    """The live board image with its defects boxed in class colours, label and score."""

    def __init__(
        self, placeholder: str = "No image yet", on_resize: Callable[[int, int], None] | None = None
    ) -> None:
        super().__init__()
        self.on_resize = on_resize
        self._bg = opaque(self, "#0d1014")
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.placeholder = placeholder
        self._image: QImage | None = None
        self._array: np.ndarray | None = None
        self._boxes: tuple[DisplayBox, ...] = ()
        self._caption = ""

    def set_frame(self, frame: DisplayFrame | None) -> None:
        if frame is None or frame.image is None:
            self._image, self._boxes = None, ()
            if frame is not None:
                self.placeholder = f"No image: {frame.result.error}"
        else:
            self._array = frame.image  # the image borrows its memory: no copy per frame
            self._image, self._boxes = to_qimage(frame.image, copy=False), frame.boxes
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self.on_resize is not None:
            self.on_resize(self.width(), self.height())

    def set_image(self, image: np.ndarray | None) -> None:
        """Show a plain 8-bit image (grey or RGB) without boxes."""
        self._image = to_qimage(image) if image is not None else None
        self._boxes = ()
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self._bg)
        if self._image is None:
            p.setPen(QColor(theme.TEXT_DIM))
            p.setFont(theme.font(14))
            p.drawText(
                self.rect(),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )
            return
        target = fit_rect(self._image.width(), self._image.height(), QRectF(self.rect()))
        if abs(target.width() - self._image.width()) < 1.5:  # scaled by the bridge already
            target = QRectF(
                round(target.x()), round(target.y()), self._image.width(), self._image.height()
            )
            p.drawImage(target.topLeft(), self._image)
        else:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(target, self._image)
        s = target.width() / self._image.width()
        for b in self._boxes:
            rect = QRectF(
                target.x() + b.x0 * s - 3,
                target.y() + b.y0 * s - 3,
                (b.x1 - b.x0) * s + 6,
                (b.y1 - b.y0) * s + 6,
            )
            label = f"{b.class_name.replace('_', ' ')} {b.score:.2f}"
            colour = theme.class_colour(b.class_name)
            draw_box(p, rect, colour, label, dashed=b.review, bounds=target)


class VerdictBanner(QWidget):
    """The last board's verdict in letters a metre high (well, 72 points) on its colour."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(170)
        self._bg = opaque(self, theme.BACKGROUND)
        self.verdict: Verdict | None = None
        self.detail = "Waiting for the first board"
        self.part = ""

    def set_verdict(self, verdict: Verdict | None, detail: str, part: str = "") -> None:
        self.verdict, self.detail, self.part = verdict, detail, part
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self._bg)
        bg = QColor(theme.VERDICT_BG[self.verdict])
        fg = QColor(theme.VERDICT_FG[self.verdict])
        p.setBrush(bg)
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(QRectF(self.rect()).adjusted(1, 1, -1, -1), 10, 10)
        p.setPen(fg)
        word = self.verdict.name if self.verdict is not None else "—"
        r = QRectF(self.rect())
        p.setFont(theme.font(66, bold=True))
        p.drawText(r.adjusted(0, 6, 0, -r.height() * 0.36), Qt.AlignmentFlag.AlignCenter, word)
        p.setFont(theme.font(14, bold=True))
        p.drawText(
            r.adjusted(14, r.height() * 0.64, -14, -r.height() * 0.18),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextSingleLine,
            self.detail,
        )
        p.setFont(theme.font(11))
        p.drawText(
            r.adjusted(14, r.height() * 0.82, -14, -4),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextSingleLine,
            self.part,
        )


class LightView(QWidget):
    """One health light: a coloured lamp, the part's name, what is wrong, why and what to do."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.light = Light(name, Level.OFF, "—", "")
        self._bg = opaque(self, theme.PANEL)
        self.setMinimumHeight(74)
        self.setToolTip("")

    def set_light(self, light: Light) -> None:
        if light != self.light:
            self.light = light
            self.setToolTip(f"{light.cause}\n{light.action}".strip())
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(280, 78)

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self._bg)
        colour = QColor(theme.LEVEL_COLOUR[self.light.level])
        d = 40
        p.setPen(QPen(colour.darker(160), 2))
        p.setBrush(colour)
        p.drawEllipse(QRectF(4, 6, d, d))
        x = d + 16
        w = self.width() - x - 4
        p.setPen(QColor(theme.TEXT_DIM))
        p.setFont(theme.font(10, bold=True))
        p.drawText(QRectF(x, 2, w, 18), Qt.AlignmentFlag.AlignLeft, self.light.name.upper())
        p.setPen(colour if self.light.level >= Level.WARN else QColor(theme.TEXT))
        p.setFont(theme.font(15, bold=True))
        p.drawText(QRectF(x, 18, w, 28), Qt.AlignmentFlag.AlignLeft, self.light.summary)
        p.setPen(QColor(theme.TEXT_DIM))
        p.setFont(theme.font(9))
        metrics = p.fontMetrics()
        cause = metrics.elidedText(self.light.cause, Qt.TextElideMode.ElideRight, int(w) * 2 - 40)
        p.drawText(
            QRectF(x, 46, w, self.height() - 46),
            Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap,
            cause,
        )


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


class CycleChart(QWidget):
    """Recent cycle times as bars against the budget line, with p50 and p99 marked."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(140)
        self._bg = opaque(self, theme.PANEL)
        self.snapshot: CounterSnapshot | None = None

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
        lines = [(s.budget_ms, "#ff3b30", f"budget {s.budget_ms:.0f} ms", Qt.PenStyle.SolidLine)]
        if s.p99_ms is not None and s.p50_ms is not None:
            lines += [
                (s.p99_ms, "#f2a900", f"p99 {s.p99_ms:.1f}", Qt.PenStyle.DashLine),
                (s.p50_ms, "#2ecc71", f"p50 {s.p50_ms:.1f}", Qt.PenStyle.DashLine),
            ]
        for ms, colour, _text, style in lines:
            p.setPen(QPen(QColor(colour), 2, style))
            p.drawLine(QPointF(plot.left(), y(ms)), QPointF(plot.right(), y(ms)))
        # The legend above the plot, so labels never sit on top of each other.
        p.setFont(theme.font(10, bold=True))
        x = plot.left()
        for _ms, colour, text, _style in lines:
            p.setPen(QColor(colour))
            p.drawText(QRectF(x, 2, 200, 20), Qt.AlignmentFlag.AlignLeft, text)
            x += p.fontMetrics().horizontalAdvance(text) + 24
        p.setPen(QColor(theme.TEXT_DIM))
        p.setFont(theme.font(9))
        p.drawText(
            QRectF(plot.left(), plot.bottom() + 2, plot.width(), 18),
            Qt.AlignmentFlag.AlignRight,
            f"last {n} boards (ms); p50/p99 over {s.window}; over budget this shift: "
            f"{s.over_budget}",
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


class CounterTile(QWidget):
    """A big number with its caption (boards, OK, NG, ...), in the verdict's colour."""

    def __init__(self, caption: str, colour: str = theme.TEXT) -> None:
        super().__init__()
        self.caption = caption
        self.colour = colour
        self.value = "0"
        self._bg = opaque(self, theme.PANEL)
        self.setMinimumSize(90, 72)

    def set_value(self, value: str) -> None:
        if value != self.value:
            self.value = value
            self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        r = QRectF(self.rect())
        p.fillRect(r, self._bg)
        p.setPen(QColor(self.colour))
        p.setFont(theme.font(26, bold=True))
        p.drawText(r.adjusted(0, 0, 0, -22), Qt.AlignmentFlag.AlignCenter, self.value)
        p.setPen(QColor(theme.TEXT_DIM))
        p.setFont(theme.font(10, bold=True))
        p.drawText(
            r.adjusted(0, r.height() - 24, 0, 0), Qt.AlignmentFlag.AlignCenter, self.caption.upper()
        )
