"""The camera page: GenICam devices the producers see, key node values, and a test grab.

Commissioning without the vendor's viewer: find the cameras behind the GenTL producers (the
station config's, else ``GENICAM_GENTL64_PATH``), open one with the recipe's camera settings,
read back what the device actually runs with, and grab one frame. The settings the device lacks
or refused are listed, one line each, as the source reports them. The page opens the camera only
for the test grab and closes it at once; while the station itself inspects from that camera, the
producer is busy and the page says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from aoi.app.station import Station
from aoi.errors import AoiError
from aoi.pixels import to_mono8
from aoi.recipe import CameraSettings
from ui import theme
from ui.bridge import display_image
from ui.golden_panel import GoldenPanel
from ui.widgets import ImageView, panel

log = logging.getLogger(__name__)

#: Nodes worth seeing at a glance, in the order an engineer checks them.
KEY_NODES = (
    "DeviceVendorName",
    "DeviceModelName",
    "DeviceSerialNumber",
    "DeviceFirmwareVersion",
    "Width",
    "Height",
    "OffsetX",
    "OffsetY",
    "PixelFormat",
    "ExposureTime",
    "Gain",
    "TriggerMode",
    "TriggerSource",
    "AcquisitionFrameRate",
    "DeviceTemperature",
)
DEVICE_COLUMNS = ("model", "serial_number", "user_defined_name", "id", "vendor", "in_use")
DEVICE_HEADERS = {
    "model": "Model",
    "serial_number": "Serial",
    "user_defined_name": "Name",
    "id": "ID",
    "vendor": "Vendor",
    "in_use": "In use",
}


def viky_producer() -> Path | None:
    """The simulated GenTL producer the genicam package ships (three Viky cameras), if any."""
    try:
        import genicam
    except ImportError:
        return None
    path = Path(genicam.__file__).parent / "viky.cti"
    return path if path.is_file() else None


class CameraPage(QWidget):
    def __init__(
        self,
        station: Station,
        settings: Callable[[], CameraSettings],
        recipe: Callable[[], Path | None] = lambda: None,
    ) -> None:
        super().__init__()
        self.station = station
        self.settings = settings
        self.devices: list[dict[str, str]] = []

        root = QHBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        left = QVBoxLayout()
        found_panel, fl = panel("GenICam devices")
        row = QHBoxLayout()
        row.addWidget(QLabel("GenTL producers"))
        self.producers = QLineEdit(";".join(str(p) for p in station.config.camera.cti_paths))
        self.producers.setPlaceholderText("from GENICAM_GENTL64_PATH")
        row.addWidget(self.producers, 1)
        sim = QPushButton("Simulated cameras")
        sim.setToolTip("Use the Viky producer shipped with the genicam package")
        sim.setEnabled(viky_producer() is not None)
        sim.clicked.connect(lambda: self.producers.setText(str(viky_producer())))
        row.addWidget(sim)
        find = QPushButton("Find cameras")
        find.clicked.connect(self.find)
        row.addWidget(find)
        fl.addLayout(row)
        self.table = QTableWidget(0, len(DEVICE_COLUMNS))
        self.table.setHorizontalHeaderLabels([DEVICE_HEADERS[c] for c in DEVICE_COLUMNS])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # A column never narrower than its title: "Serial", "In use" were cut on small panels.
        header.setMinimumSectionSize(
            max(header.fontMetrics().horizontalAdvance(t) for t in DEVICE_HEADERS.values()) + 24
        )
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        fl.addWidget(self.table, 1)
        self.status = QLabel("Press Find cameras.")
        self.status.setWordWrap(True)
        self.status.setObjectName("dim")
        fl.addWidget(self.status)
        grab = QPushButton("Test grab with the recipe's camera settings")
        grab.clicked.connect(self.test_grab)
        fl.addWidget(grab)
        left.addWidget(found_panel, 1)
        nodes_panel, nl = panel("Key node values")
        self.nodes = QTableWidget(0, 2)
        self.nodes.setHorizontalHeaderLabels(["node", "value"])
        self.nodes.verticalHeader().setVisible(False)
        self.nodes.horizontalHeader().setStretchLastSection(True)
        self.nodes.setColumnWidth(0, 220)
        nl.addWidget(self.nodes, 1)
        self.warnings = QLabel("")
        self.warnings.setWordWrap(True)
        self.warnings.setStyleSheet("color: #f2a900;")
        nl.addWidget(self.warnings)
        left.addWidget(nodes_panel, 1)
        root.addLayout(left, 5)
        self.image = ImageView("The test grab appears here")
        image_panel, il = panel("Test grab", self.image)
        self.grab_info = QLabel("")
        self.grab_info.setObjectName("dim")
        il.addWidget(self.grab_info)
        # The golden template's controls share the column: the picture may get smaller.
        self.image.setMinimumSize(200, 120)
        self.golden = GoldenPanel(station, recipe, self.test_grab)
        self.golden.grabbed.connect(self._show_board)
        il.addWidget(self.golden)
        root.addWidget(image_panel, 4)

    def _show_board(self, image: np.ndarray) -> None:
        self.image.set_image(display_image(image)[0])
        self.grab_info.setText(
            f"{image.shape[1]} x {image.shape[0]} px, from {self.golden.source.currentText()}"
        )

    def _cti_paths(self) -> list[Path] | None:
        text = self.producers.text().strip()
        return [Path(p) for p in text.split(";") if p.strip()] or None

    def _busy(self, on: bool) -> None:
        if on:
            QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        else:
            QApplication.restoreOverrideCursor()

    def find(self) -> None:
        from aoi.sources.genicam import list_devices

        self._busy(True)
        try:
            self.devices = list_devices(self._cti_paths())
        except AoiError as err:
            self.devices = []
            self.status.setText(str(err))
            self.status.setStyleSheet("color: #ff8a80;")
        else:
            n = len(self.devices)
            self.status.setText(f"{n} camera{'s' if n != 1 else ''} found.")
            self.status.setStyleSheet("")
        finally:
            self._busy(False)
        self.table.setRowCount(len(self.devices))
        for r, device in enumerate(self.devices):
            for c, key in enumerate(DEVICE_COLUMNS):
                self.table.setItem(r, c, QTableWidgetItem(device.get(key, "")))
        self.table.resizeColumnsToContents()
        if self.devices:
            self.table.selectRow(0)

    def test_grab(self) -> None:
        """Open the selected camera with the recipe's settings, read key nodes, grab one frame."""
        from aoi.sources.genicam import GenICamSource

        row = self.table.currentRow()
        if not 0 <= row < len(self.devices):
            self.status.setText("Select a camera first (Find cameras).")
            return
        device = self.devices[row]
        wanted = device.get("serial_number") or device.get("id") or None
        values: list[tuple[str, str]] = []
        self._busy(True)
        try:
            with GenICamSource(
                cti_paths=self._cti_paths(),
                device=wanted,
                settings=self.settings(),
                fetch_timeout_s=self.station.config.camera.fetch_timeout_s,
            ) as cam:
                for name in KEY_NODES:
                    value = cam.node_value(name)
                    if value is not None:
                        values.append((name, str(value)))
                frame = cam.grab()
                problems = list(cam.warnings)
        except AoiError as err:
            self.grab_info.setText(f"Test grab failed: {err}")
            self.grab_info.setStyleSheet("color: #ff8a80;")
            return
        finally:
            self._busy(False)
        self.nodes.setRowCount(len(values))
        for r, (name, value) in enumerate(values):
            self.nodes.setItem(r, 0, QTableWidgetItem(name))
            self.nodes.setItem(r, 1, QTableWidgetItem(value))
        self.warnings.setText(
            "Not applied:\n" + "\n".join(f"• {p}" for p in problems) if problems else ""
        )
        self.image.set_image(display_image(frame.image)[0])
        self.golden.set_board(to_mono8(frame.image))
        img = frame.image
        depth = "16 bit" if img.dtype.itemsize == 2 else "8 bit"
        colour = "colour" if img.ndim == 3 else "mono"
        self.grab_info.setStyleSheet(f"color: {theme.TEXT_DIM};")
        self.grab_info.setText(
            f"{frame.width_px} x {frame.height_px} px, {colour} {depth}, from "
            f"{device.get('model')} serial {device.get('serial_number')}"
        )
