"""The station's state at a glance: the verdict banner, health lights and counter tiles."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

from aoi.types import Verdict
from ui import theme
from ui.logic.health import Level, Light
from ui.widgets.basics import opaque


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
