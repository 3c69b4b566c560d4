"""Building blocks every screen uses: framed panels, widgets that paint every pixel, local times."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget


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


class ElidedLabel(QLabel):
    """One line that ends in "…" where its panel is narrower than the text (the whole text is
    the tooltip): a line that must never push its panel wider or clip mid-letter."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self._full = ""
        sp = self.sizePolicy()
        sp.setHorizontalPolicy(sp.Policy.Ignored)
        self.setSizePolicy(sp)
        self.set_full_text(text)

    def set_full_text(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    @property
    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event: object) -> None:  # noqa: N802
        super().resizeEvent(event)  # type: ignore[arg-type]
        self._elide()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() is QEvent.Type.FontChange:  # the theme rescaled: elide anew
            self._elide()

    def _elide(self) -> None:
        width = max(0, self.contentsRect().width())
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width))
