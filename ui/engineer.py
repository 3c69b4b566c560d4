"""The engineer screen: pick a recipe, edit it with live validation, dry-run it, save, activate.

Commissioning a product without a text editor: the schema checks every edit as it is typed and
its messages appear below the form; Save writes a new version (the old one goes to history) and
audits every changed field with its old and new value; a dry run inspects synthetic boards or
this station's stored images with the edited recipe before it goes live; Activate puts a saved
recipe on the line (with the station stopped).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from aoi.app.station import Station
from aoi.errors import AoiError, RecipeError
from aoi.recipe import site_recipes_dir
from aoi.recipe.authoring import new_recipe_from
from aoi.recipe.template import load_template
from aoi.storage.db import DB_ERRORS
from ui import theme
from ui.logic.dryrun import STORED, SYNTHETIC, DryRunReport, dry_run
from ui.logic.recipe_edit import Validation, preview, read_raw, restore, save_new_version, validate
from ui.logic.recipe_list import RecipeEntry, list_recipes
from ui.logic.words import labelled
from ui.recipe_form import RecipeForm
from ui.widgets import panel

log = logging.getLogger(__name__)


class _DryRunSignals(QObject):
    finished = Signal(object)


class EngineerScreen(QWidget):
    """Recipe list, editor, validation, dry run, save as new version, activate."""

    recipe_activated = Signal()

    def __init__(self, station: Station, who: Callable[[], str]) -> None:
        super().__init__()
        self.station = station
        self.who = who
        self.path: Path | None = None
        self.base_raw: dict[str, Any] = {}
        self.base_version = 1
        self.validation: Validation | None = None
        self._dry_thread: threading.Thread | None = None
        self._dry_stop = threading.Event()
        self._dry_signals = _DryRunSignals()
        self._dry_signals.finished.connect(self._dry_run_done, Qt.ConnectionType.QueuedConnection)

        root = QHBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        list_panel, ll = panel("Recipes")
        self.recipes = QListWidget()
        self.recipes.setMinimumWidth(200)
        self.recipes.setWordWrap(True)  # "v1 · product code 101 · ON THE LINE" in narrow lists
        self.recipes.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.recipes.currentItemChanged.connect(lambda item, _prev: self._open_item(item))
        ll.addWidget(self.recipes, 1)
        self.entries: dict[str, RecipeEntry] = {}
        self.new_button = QPushButton("New product from this…")
        self.new_button.setToolTip(
            "Copy the selected recipe as a new product: new name, free product code, version 1, "
            "its own template (replace it from the camera page)"
        )
        self.new_button.clicked.connect(partial(self.new_from, None))
        ll.addWidget(self.new_button)
        self.activate_button = QPushButton("Activate on the line")
        self.activate_button.clicked.connect(self.activate)
        ll.addWidget(self.activate_button)
        self.activate_note = QLabel("")
        self.activate_note.setObjectName("dim")
        self.activate_note.setWordWrap(True)
        ll.addWidget(self.activate_note)
        root.addWidget(list_panel, 2)

        middle = QVBoxLayout()
        self.title = QLabel("")
        theme.set_font(self.title, 16, bold=True)
        middle.addWidget(self.title)
        self.form = RecipeForm()
        self.form.edited.connect(self.revalidate)
        middle.addWidget(self.form, 1)
        self.messages = QLabel("")
        self.messages.setWordWrap(True)
        self.messages.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.messages.setMinimumHeight(48)
        check_panel, _ = panel("Validation", self.messages)
        middle.addWidget(check_panel)
        buttons = QHBoxLayout()
        self.save_button = QPushButton("Save as new version")
        self.save_button.setObjectName("start")
        self.save_button.clicked.connect(self.save)
        self.revert_button = QPushButton("Undo edits")
        self.revert_button.clicked.connect(lambda: self.open(self.path) if self.path else None)
        buttons.addWidget(self.revert_button)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        middle.addLayout(buttons)
        root.addLayout(middle, 6)

        dry_panel, dl = panel("Dry run (nothing goes to the line)")
        self.dry_source = QComboBox()
        self.dry_source.addItem("Synthetic boards", SYNTHETIC)
        self.dry_source.addItem("Stored images of this recipe", STORED)
        dl.addWidget(self.dry_source)
        row = QHBoxLayout()
        row.addWidget(QLabel("Boards"))
        self.dry_boards = QSpinBox()
        self.dry_boards.setRange(1, 500)
        self.dry_boards.setValue(20)
        row.addWidget(self.dry_boards)
        dl.addLayout(row)
        self.dry_button = QPushButton("Dry run the edited recipe")
        self.dry_button.clicked.connect(self.start_dry_run)
        dl.addWidget(self.dry_button)
        self.dry_result = QLabel("Runs the recipe as edited, before saving.")
        self.dry_result.setWordWrap(True)
        self.dry_result.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.dry_result.setObjectName("dim")
        dl.addWidget(self.dry_result, 1)
        root.addWidget(dry_panel, 2)

    # -- recipes --------------------------------------------------------------------------------

    def reload_list(self) -> None:
        active = self.station.active_recipe
        current = self.path
        self.recipes.blockSignals(True)
        self.recipes.clear()
        self.entries = {}
        # The station's folder (the PLC's lookup), then the site's (where new products go).
        for entry in list_recipes([self.station.recipes_dir, site_recipes_dir()], active):
            item = QListWidgetItem(entry.text())
            item.setData(Qt.ItemDataRole.UserRole, str(entry.path))
            self.entries[str(entry.path)] = entry
            if entry.problem:
                item.setForeground(theme.class_colour("open"))
                item.setToolTip(entry.problem)
            elif entry.on_line:
                item.setForeground(theme.class_colour("spurious_copper"))
            self.recipes.addItem(item)
            if current is not None and entry.path.resolve() == current.resolve():
                self.recipes.setCurrentItem(item)
        self.recipes.blockSignals(False)
        if current is None and self.recipes.count():
            wanted = str(active.path) if active else None
            rows = [
                i
                for i in range(self.recipes.count())
                if self.recipes.item(i).data(Qt.ItemDataRole.UserRole) == wanted
            ]
            self.recipes.setCurrentRow(rows[0] if rows else 0)
        self.update_activate()

    def new_from(self, name: str | None = None) -> Path | None:
        """Copy the open recipe as a new product into the site's recipes folder, and open it."""
        if self.path is None:
            return None
        if name is None:
            name, ok = QInputDialog.getText(
                self, "New product", f"Name of the new product (copied from {self.path.stem}):"
            )
            if not ok or not name.strip():
                return None
        try:
            path = new_recipe_from(self.path, name.strip(), site_recipes_dir())
            self.station.audit(self.who(), f"recipe {name}: created", None, f"from {self.path}")
        except (RecipeError, OSError, *DB_ERRORS) as err:
            self.messages.setStyleSheet("color: #ff8a80;")
            self.messages.setText(f"New product not created: {err}")
            return None
        self.path = path
        self.reload_list()
        self.open(path)
        self.messages.setText(
            f"Created {path}. Next: grab a good board on the Camera page and save it as the "
            "template, then check geometry, dry run and activate."
        )
        return path

    def _open_item(self, item: QListWidgetItem | None) -> None:
        if item is not None:
            self.open(Path(item.data(Qt.ItemDataRole.UserRole)))

    def open(self, path: Path) -> None:
        try:
            raw = read_raw(path)
        except RecipeError as err:
            self.messages.setText(str(err))
            return
        self.path, self.base_raw = path, raw
        self.base_version = int(raw.get("version", 1))
        v = validate(raw, str(path))
        shown = v.recipe.model_dump(mode="json") if v.recipe else raw
        self.form.load(raw, shown, self._template(raw, path))
        self.dry_result.setText("Runs the recipe as edited, before saving.")
        self.revalidate()
        self.update_activate()

    def _template(self, raw: dict[str, Any], path: Path) -> np.ndarray | None:
        try:
            loaded = preview(raw, path)
            g = loaded.recipe.geometry
            return load_template(
                loaded.template_path, g.frame_width_px, g.frame_height_px, str(path)
            )
        except AoiError:
            return None

    @property
    def dirty(self) -> bool:
        return self.form.raw != self.base_raw

    def revalidate(self) -> None:
        """Check the edited recipe with the schema; show its messages; allow Save if valid."""
        if self.path is None:
            return
        self.validation = v = validate(self.form.raw, str(self.path))
        self.form.mark_invalid(v.fields)
        name = self.form.raw.get("name", self.path.stem)
        self.title.setText(
            f"{name} · version {self.base_version}" + ("  (edited)" if self.dirty else "")
        )
        if v.ok:
            self.messages.setStyleSheet("color: #7ee2a8;")
            self.messages.setText(
                f"Valid. Save writes version {self.base_version + 1}."
                if self.dirty
                else "Valid. No changes yet."
            )
        else:
            self.messages.setStyleSheet("color: #ff8a80;")
            self.messages.setText("\n".join(labelled(v.messages, self.form.labels)))
        self.save_button.setEnabled(v.ok and self.dirty)
        self.save_button.setText(f"Save as version {self.base_version + 1}")
        self.dry_button.setEnabled(v.ok and self._dry_thread is None)

    # -- save and activate ----------------------------------------------------------------------

    def save(self) -> bool:
        """Save the edits as a new version and audit each changed field; False if refused."""
        if self.path is None or self.validation is None or not self.validation.ok:
            return False
        who = self.who()
        try:
            saved = save_new_version(self.path, self.form.raw, self.base_version)
        except (RecipeError, OSError) as err:
            self.messages.setStyleSheet("color: #ff8a80;")
            self.messages.setText(str(err))
            return False
        path = saved.path
        name = saved.loaded.name
        try:
            for field, old, new in saved.changes:
                self.station.audit(who, f"recipe {name}: {field}", old, new)
            self.station.audit(
                who,
                f"recipe {name}: version",
                str(self.base_version),
                str(saved.loaded.recipe.version),
            )
        except DB_ERRORS as err:
            restore(saved, path)
            self.messages.setStyleSheet("color: #ff8a80;")
            self.messages.setText(
                f"Not saved: the audit trail could not record the change "
                f"({str(err).splitlines()[0]}); version {self.base_version} stays."
            )
            return False
        self.open(path)
        self.messages.setStyleSheet("color: #7ee2a8;")
        self.messages.setText(
            f"Saved as version {saved.loaded.recipe.version} ({len(saved.changes)} field(s) "
            f"changed; version {saved.loaded.recipe.version - 1} kept in "
            f"{saved.previous.parent.name}/). Activate it to use it on the line."
        )
        self.reload_list()
        return True

    def update_activate(self) -> None:
        active = self.station.active_recipe
        same = (
            active is not None
            and self.path is not None
            and active.path == self.path.resolve()
            and active.recipe.version == self.base_version
        )
        entry = self.entries.get(str(self.path)) if self.path is not None else None
        problem = entry.problem if entry is not None else ""
        self.activate_button.setEnabled(
            self.path is not None and not same and not self.dirty and not problem
        )
        if problem:
            self.activate_note.setText(f"Cannot be activated: {problem}.")
        elif self.station.running and not same:
            self.activate_note.setText("Stop the station before activating another recipe.")
        elif same:
            self.activate_note.setText("This version is on the line.")
        else:
            self.activate_note.setText("")

    def activate(self) -> bool:
        if self.path is None:
            return False
        try:
            self.station.activate(self.path, self.who())
        except (AoiError, *DB_ERRORS) as err:
            QMessageBox.warning(self, "Recipe not activated", str(err))
            return False
        self.recipe_activated.emit()
        self.reload_list()
        return True

    # -- dry run --------------------------------------------------------------------------------

    def start_dry_run(self) -> None:
        if self.path is None or self._dry_thread is not None:
            return
        try:
            loaded = preview(self.form.raw, self.path)
        except RecipeError as err:
            self.dry_result.setText(str(err))
            return
        source = self.dry_source.currentData()
        boards = self.dry_boards.value()
        db = self.station.storage.db if self.station.storage else None
        self._dry_stop.clear()
        self.dry_button.setEnabled(False)
        self.dry_result.setText(f"Inspecting {boards} boards …")

        def work() -> None:
            try:
                report: DryRunReport | str = dry_run(
                    loaded,
                    self.station.config,
                    source=source,
                    boards=boards,
                    db=db,
                    backend=self.station.options.backend,
                    stop=self._dry_stop,
                )
            except AoiError as err:
                report = str(err)
            self._dry_signals.finished.emit(report)

        self._dry_thread = threading.Thread(target=work, name="aoi-dry-run", daemon=True)
        self._dry_thread.start()

    def _dry_run_done(self, report: DryRunReport | str) -> None:
        if self._dry_thread is not None:
            self._dry_thread.join()
            self._dry_thread = None
        if isinstance(report, str):
            self.dry_result.setText(f"Dry run failed: {report}")
        else:
            text = report.summary()
            if report.changed:
                text += "\n" + "\n".join(f"  {n}: {a} → {b}" for n, a, b in report.changed[:8])
            if report.errors:
                text += "\n" + "\n".join(report.errors[:4])
            self.dry_result.setText(text)
        self.revalidate()

    def shutdown(self) -> None:
        """Stop a dry run in progress and wait for its thread (window closing, tests)."""
        self._dry_stop.set()
        if self._dry_thread is not None:
            self._dry_thread.join()
            self._dry_thread = None

    def showEvent(self, event: object) -> None:  # noqa: N802
        super().showEvent(event)  # type: ignore[arg-type]
        self.reload_list()
