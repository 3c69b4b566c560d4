"""Building blocks every screen uses: framed panels, widgets that paint every pixel, local times."""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import Qt
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
