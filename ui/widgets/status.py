"""The station's state at a glance: the verdict banner, health lights and counter tiles."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

from aoi.types import Verdict
from ui import theme
from ui.logic.health import Level, Light
from ui.widgets.basics import opaque


def fitted(p: QPainter, text: str, point_size: float, width: float, *, bold: bool) -> None:
    """Set the largest font up to ``point_size`` (design points) at which ``text`` fits
    ``width``: painted text shrinks rather than clips."""
    size = point_size
    while True:
        p.setFont(theme.font(size, bold=bold))
        if p.fontMetrics().horizontalAdvance(text) <= width or size <= 6:
            return
        size *= 0.92


class VerdictBanner(QWidget):
    """The last board's verdict in letters a metre high (well, 72 points) on its colour."""

    def __init__(self) -> None:
        super().__init__()
        self._bg = opaque(self, theme.BACKGROUND)
        self.verdict: Verdict | None = None
        self.detail = "Waiting for the first board"
        self.part = ""
        #: While the station is not inspecting: its state (STOPPED, FAULT, ...) replaces the
        #: last verdict, so a stopped station never shows a big green OK.
        self.state = ""

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(theme.px(240), theme.px(150))

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(theme.px(400), theme.px(170))

    def set_verdict(self, verdict: Verdict | None, detail: str, part: str = "") -> None:
        self.verdict, self.detail, self.part = verdict, detail, part
        self.update()

    def set_state(self, state: str) -> None:
        """Show the station's state instead of the verdict ("" while it inspects)."""
        if state != self.state:
            self.state = state
            self.update()

    def shown(self) -> tuple[str, str, str]:
        """The big word, the line under it and the small line: what the banner paints."""
        word = self.verdict.name if self.verdict is not None else "—"
        if not self.state:
            return word, self.detail, self.part
        last = f"Last board: {word}" + (f" · {self.detail}" if self.verdict is not None else "")
        return self.state, last, self.part

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self._bg)
        word, detail, part = self.shown()
        if self.state:
            bg, fg = QColor(theme.STATE_BG), QColor(theme.STATE_FG.get(self.state, theme.TEXT))
            edge = QColor(theme.STATE_FG.get(self.state, theme.STATE_BG))
        else:
            bg = edge = QColor(theme.VERDICT_BG[self.verdict])
            fg = QColor(theme.VERDICT_FG[self.verdict])
        p.setBrush(bg)
        p.setPen(QPen(edge, 4) if self.state else Qt.PenStyle.NoPen)
        p.drawRoundedRect(QRectF(self.rect()).adjusted(3, 3, -3, -3), 10, 10)
        p.setPen(fg)
        r = QRectF(self.rect())
        fitted(p, word, 66 if not self.state else 54, r.width() - 28, bold=True)
        p.drawText(r.adjusted(0, 6, 0, -r.height() * 0.36), Qt.AlignmentFlag.AlignCenter, word)
        p.setPen(fg if not self.state else QColor(theme.TEXT_DIM))
        fitted(p, detail, 14, r.width() - 28, bold=True)
        p.drawText(
            r.adjusted(14, r.height() * 0.64, -14, -r.height() * 0.18),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextSingleLine,
            detail,
        )
        fitted(p, part, 11, r.width() - 28, bold=False)
        p.drawText(
            r.adjusted(14, r.height() * 0.82, -14, -4),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextSingleLine,
            part,
        )


class LightView(QWidget):
    """One health light: a coloured lamp, the part's name, what is wrong, why and what to do."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.light = Light(name, Level.OFF, "—", "")
        self._bg = opaque(self, theme.PANEL)
        self.setToolTip("")

    def set_light(self, light: Light) -> None:
        if light != self.light:
            self.light = light
            self.setToolTip(f"{light.cause}\n{light.action}".strip())
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(theme.px(280), theme.px(78))

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(theme.px(180), theme.px(66))

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self._bg)
        colour = QColor(theme.LEVEL_COLOUR[self.light.level])
        k = theme.scale()
        d = 40 * k
        p.setPen(QPen(colour.darker(160), 2))
        p.setBrush(colour)
        p.drawEllipse(QRectF(4, 6 * k, d, d))
        x = d + 12 * k
        w = self.width() - x - 4
        p.setPen(QColor(theme.TEXT_DIM))
        p.setFont(theme.font(10, bold=True))
        p.drawText(QRectF(x, 2, w, 18 * k), Qt.AlignmentFlag.AlignLeft, self.light.name.upper())
        p.setPen(colour if self.light.level >= Level.WARN else QColor(theme.TEXT))
        fitted(p, self.light.summary, 15, w, bold=True)
        p.drawText(QRectF(x, 18 * k, w, 28 * k), Qt.AlignmentFlag.AlignLeft, self.light.summary)
        p.setPen(QColor(theme.TEXT_DIM))
        p.setFont(theme.font(9.5))
        metrics = p.fontMetrics()
        # As many whole lines as the light's height holds; the rest elided (the tooltip has all).
        area_h = self.height() - 46 * k
        lines = max(1, int(area_h // metrics.lineSpacing()))
        cause = metrics.elidedText(
            self.light.cause, Qt.TextElideMode.ElideRight, int(w) * lines - lines * 24
        )
        p.drawText(
            QRectF(x, 46 * k, w, lines * metrics.lineSpacing()),
            Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap,
            cause,
        )


class CounterTile(QWidget):
    """A big number with its caption (boards, OK, NG, ...), in the verdict's colour."""

    def __init__(self, caption: str, colour: str = theme.TEXT) -> None:
        super().__init__()
        self.caption = caption
        self.colour = colour
        self.value = "0"
        self._bg = opaque(self, theme.PANEL)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(theme.px(56), theme.px(64))

    def set_value(self, value: str) -> None:
        if value != self.value:
            self.value = value
            self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        r = QRectF(self.rect())
        p.fillRect(r, self._bg)
        p.setPen(QColor(self.colour))
        fitted(p, self.value, 26, r.width() - 4, bold=True)
        caption_h = theme.px(22)
        p.drawText(r.adjusted(0, 0, 0, -caption_h), Qt.AlignmentFlag.AlignCenter, self.value)
        p.setPen(QColor(theme.TEXT_DIM))
        fitted(p, self.caption.upper(), 10, r.width() - 4, bold=True)
        p.drawText(
            r.adjusted(0, r.height() - caption_h - 2, 0, 0),
            Qt.AlignmentFlag.AlignCenter,
            self.caption.upper(),
        )
