"""The camera page's golden template panel: grab a good board, save it as the recipe's template,
and check that a second board aligns to it (shift, rotation and match, in words)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from aoi.app.golden import check_alignment, grab_boards, png_bytes
from aoi.app.station import Station
from aoi.errors import AoiError
from aoi.recipe import load_recipe
from aoi.recipe.authoring import is_shipped, set_template
from ui import theme
from ui.widgets import panel

log = logging.getLogger(__name__)

CAMERA, SYNTHETIC, REPLAY = "camera", "synthetic", "replay"


class GoldenPanel(QWidget):
    """Board source, Grab, Save as template, Check alignment; ``saved`` with the recipe path."""

    saved = Signal(object)
    grabbed = Signal(object)

    def __init__(
        self, station: Station, recipe: Callable[[], Path | None], camera_grab: Callable[[], None]
    ) -> None:
        super().__init__()
        self.station, self.recipe, self.camera_grab = station, recipe, camera_grab
        self.board: np.ndarray | None = None
        self.template: np.ndarray | None = None
        box, layout = panel("Golden template of the recipe being edited")
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Board from"))
        self.source = QComboBox()
        self.source.addItem("the camera (test grab)", CAMERA)
        self.source.addItem("synthetic boards", SYNTHETIC)
        self.source.addItem("a replay folder", REPLAY)
        row.addWidget(self.source, 1)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("replay folder")
        row.addWidget(self.folder, 1)
        layout.addLayout(row)
        buttons = QHBoxLayout()
        self.grab_button = QPushButton("Grab a board")
        self.grab_button.clicked.connect(self.grab)
        self.save_button = QPushButton("Save as template")
        self.save_button.clicked.connect(self.save_template)
        self.check_button = QPushButton("Check alignment")
        self.check_button.setToolTip("Grab a second board and align it to the template")
        self.check_button.clicked.connect(self.check)
        for b in (self.grab_button, self.save_button, self.check_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.result = QLabel("Grab a good board, then save it as the template.")
        self.result.setWordWrap(True)
        self.result.setObjectName("dim")
        layout.addWidget(self.result)

    def _say(self, text: str, ok: bool = True) -> None:
        self.result.setStyleSheet(f"color: {theme.TEXT_DIM if ok else '#ff8a80'};")
        self.result.setText(text)

    def set_board(self, image: np.ndarray) -> None:
        """The board last grabbed (the camera page's test grab calls this)."""
        self.board = image

    def _spec(self) -> str:
        kind = self.source.currentData()
        return f"replay:{self.folder.text().strip()}" if kind == REPLAY else str(kind)

    def _grab_one(self, seed: int) -> np.ndarray | None:
        if self.source.currentData() == CAMERA:
            self.camera_grab()
            return self.board
        path = self.recipe()
        if path is None:
            self._say("Open a recipe on the Engineer screen first.", ok=False)
            return None
        loaded = load_recipe(path, check_files=False)
        return grab_boards(self._spec(), loaded, self.station.config, seed=seed)[0]

    def grab(self) -> None:
        try:
            board = self._grab_one(seed=1)
        except AoiError as err:
            self._say(f"Grab failed: {err}", ok=False)
            return
        if board is not None:
            self.board = board
            self.grabbed.emit(board)
            self._say(f"Grabbed {board.shape[1]} x {board.shape[0]} px. Save it as the template?")

    def save_template(self) -> Path | None:
        path = self.recipe()
        if self.board is None or path is None:
            self._say("Open a recipe and grab a board first.", ok=False)
            return None
        if is_shipped(path):
            self._say("Shipped recipes are read-only: make a New product from it first.", False)
            return None
        try:
            written = set_template(path, png_bytes(self.board))
        except (AoiError, OSError) as err:
            self._say(f"Template not saved: {err}", ok=False)
            return None
        self.template = self.board
        self.saved.emit(path)
        self._say(f"Saved as {written.name}. Put the board back in and press Check alignment.")
        return written

    def check(self) -> bool:
        path = self.recipe()
        if self.template is None or path is None:
            self._say("Save a template first.", ok=False)
            return False
        try:
            board = self._grab_one(seed=2)
            settings = load_recipe(path, check_files=False).recipe.registration
        except AoiError as err:
            self._say(f"Grab failed: {err}", ok=False)
            return False
        if board is None:
            return False
        result = check_alignment(self.template, board, settings)
        self._say(result.text, ok=result.ok)
        return result.ok
