"""The About box: version, the running recipe's model and its training data's terms."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget

from aoi.app.station import Station
from ui.logic.about import about_text


def station_about_text(station: Station) -> str:
    """The About text for the recipe the station runs (the one it started with while none is
    loaded on the line)."""
    loaded = station.active_recipe or station.loaded_at_start
    return about_text(loaded.name, loaded.model_path)


class AboutBox(QMessageBox):
    """A plain message box with :func:`station_about_text`; opened from the top bar."""

    def __init__(self, station: Station, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About this station")
        self.setIcon(QMessageBox.Icon.Information)
        self.setText(station_about_text(station))
        # Wide enough that a model's file name is not broken across lines (fits 1366x768).
        self.setStyleSheet("QLabel#qt_msgbox_label { min-width: 520px; }")
        self.setStandardButtons(QMessageBox.StandardButton.Close)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)


class AboutButton(QPushButton):
    """The top bar's "About" button; ``box`` is the box it opened last (None before)."""

    def __init__(self, station: Station, parent: QWidget | None = None) -> None:
        super().__init__("About", parent)
        self.setToolTip("Version, the defect model in use and its training data's terms")
        self.station = station
        self.box: AboutBox | None = None
        self.clicked.connect(self.show_box)

    def show_box(self) -> None:
        # open(), not exec(): the box is modal to the window without blocking the event loop.
        self.box = AboutBox(self.station, self.window())
        self.box.open()
