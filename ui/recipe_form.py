"""The recipe editor's form: thresholds and rules, masks drawn on the template, camera, geometry.

Every input is bound to a dotted field of the recipe's raw dict (``classes.short.score``); an
edit writes that field and emits ``edited``, and the screen validates the whole recipe with the
schema. Inputs accept more than the schema allows on purpose: the schema, not the widget, says
what is wrong, in the words ``aoi recipe validate`` uses. An input can be "off" (its minimum),
which removes the field so the schema's default applies.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from aoi.recipe import CameraSettings, ClassRule, Geometry
from aoi.recipe.describe import description
from aoi.types import DEFECT_CLASSES
from ui import theme
from ui.logic.recipe_edit import get_path, set_path
from ui.mask_canvas import MaskCanvas

#: The threshold table's columns.
_HEADERS = ("Class", "Action", "NG score ≥", "Review score ≥", "Min area px")

Getter = Callable[[], Any]
Setter = Callable[[Any], None]


def _choices(model: type, field: str) -> list[str]:
    return list(typing.get_args(model.model_fields[field].annotation))


class RecipeForm(QTabWidget):
    """The editable fields of one recipe, bound to its raw dict; ``edited`` after each change."""

    edited = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.raw: dict[str, Any] = {}
        self.shown: dict[str, Any] = {}
        self._bindings: dict[str, tuple[QWidget, Setter]] = {}
        #: The label each field has on the form, for messages in the form's words.
        self.labels: dict[str, str] = {}
        self._loading = False
        # Each page scrolls: on a 1024x768 panel the form is taller and wider than its room.
        for page, title in (
            (self._thresholds_tab(), "Thresholds and rules"),
            (self._masks_tab(), "Masks"),
            (self._camera_tab(), "Camera settings"),
            (self._geometry_tab(), "Input geometry"),
        ):
            area = QScrollArea()
            area.setWidgetResizable(True)
            area.setFrameShape(QFrame.Shape.NoFrame)
            area.setWidget(page)
            self.addTab(area, title)

    # -- bindings -------------------------------------------------------------------------------

    def _bind(self, path: str, widget: QWidget, getter: Getter, setter: Setter) -> QWidget:
        self._bindings[path] = (widget, setter)
        widget.setObjectName(path)
        # The schema's own words, so the form and `aoi recipe schema` never disagree.
        widget.setToolTip(f"{path}: {description(path)}")

        def changed(*_: object) -> None:
            if not self._loading:
                set_path(self.raw, path, getter())
                self.edited.emit()

        signal = getattr(widget, "valueChanged", None) or getattr(
            widget, "currentTextChanged", None
        )
        if isinstance(widget, QLineEdit):
            signal = widget.textEdited
        signal.connect(changed)
        return widget

    def number(
        self, path: str, lo: float, hi: float, step: float, decimals: int = 2, *, off: bool = False
    ) -> QDoubleSpinBox:
        w = QDoubleSpinBox()
        w.setDecimals(decimals)
        w.setSingleStep(step)
        w.setRange(lo - step if off else lo, hi)
        if off:
            w.setSpecialValueText("off")
        w.setKeyboardTracking(True)

        def get() -> float | None:
            return None if off and w.value() == w.minimum() else round(w.value(), decimals)

        def put(v: Any) -> None:
            w.setValue(w.minimum() if v is None else float(v))

        self._bind(path, w, get, put)
        return w

    def integer(self, path: str, lo: int, hi: int, *, off: bool = False) -> QSpinBox:
        w = QSpinBox()
        w.setRange(lo - 1 if off else lo, hi)
        if off:
            w.setSpecialValueText("off")

        def get() -> int | None:
            return None if off and w.value() == w.minimum() else w.value()

        def put(v: Any) -> None:
            w.setValue(w.minimum() if v is None else int(v))

        self._bind(path, w, get, put)
        return w

    def choice(self, path: str, items: list[str]) -> QComboBox:
        w = QComboBox()
        w.addItems(items)
        self._bind(path, w, w.currentText, lambda v: w.setCurrentText(str(v)))
        return w

    def text(self, path: str) -> QLineEdit:
        w = QLineEdit()
        self._bind(path, w, w.text, lambda v: w.setText("" if v is None else str(v)))
        return w

    def _row(self, form: QFormLayout, label: str, widget: QWidget) -> None:
        form.addRow(label, widget)
        self.labels[widget.objectName()] = label

    def widget(self, path: str) -> QWidget:
        return self._bindings[path][0]

    # -- tabs -----------------------------------------------------------------------------------

    def _thresholds_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        table = QTableWidget(len(DEFECT_CLASSES), 5)
        table.setHorizontalHeaderLabels(list(_HEADERS))
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setStretchLastSection(True)
        actions = _choices(ClassRule, "action")
        headers = dict(
            zip(("action", "score", "review_score", "min_area_px"), _HEADERS[1:], strict=True)
        )
        for row, name in enumerate(DEFECT_CLASSES):
            for leaf, header in headers.items():
                self.labels[f"classes.{name}.{leaf}"] = f"{name.replace('_', ' ')} · {header}"
            label = QLabel(f"  {name.replace('_', ' ')}")
            label.setStyleSheet(f"color: {theme.class_colour(name).name()}; font-weight: bold;")
            table.setCellWidget(row, 0, label)
            table.setCellWidget(row, 1, self.choice(f"classes.{name}.action", actions))
            table.setCellWidget(row, 2, self.number(f"classes.{name}.score", 0.0, 2.0, 0.05))
            table.setCellWidget(
                row, 3, self.number(f"classes.{name}.review_score", 0.0, 2.0, 0.05, off=True)
            )
            table.setCellWidget(row, 4, self.integer(f"classes.{name}.min_area_px", -10, 100000))
            table.setRowHeight(row, 38)
        for col, w in enumerate((170, 110, 130, 140, 110)):
            table.setColumnWidth(col, w)
        layout.addWidget(table, 1)
        rules = QFormLayout()
        self._row(rules, "Product code (PLC)", self.integer("product_code", 0, 70000))
        self._row(rules, "Cycle budget ms", self.number("cycle_budget_ms", 0.0, 60000, 5, 1))
        self._row(
            rules, "NG from this many defects", self.integer("verdict.ng_min_defects", 0, 1000)
        )
        self._row(
            rules,
            "REVIEW above this many (bad image?)",
            self.integer("verdict.review_max_defects", 0, 100000),
        )
        self._row(rules, "Description", self.text("description"))
        layout.addLayout(rules)
        return page

    def _masks_tab(self) -> QWidget:
        page = QWidget()
        layout = QHBoxLayout(page)
        self.canvas = MaskCanvas()
        self.canvas.drawn.connect(self._add_mask)
        layout.addWidget(self.canvas, 3)
        side = QVBoxLayout()
        hint = QLabel(
            "Drag on the template to mask a region (fiducials, labels, "
            "areas not to inspect). Defects inside a mask are not reported."
        )
        hint.setWordWrap(True)
        hint.setObjectName("dim")
        side.addWidget(hint)
        self.mask_list = QListWidget()
        self.mask_list.currentRowChanged.connect(self._select_mask)
        side.addWidget(self.mask_list, 1)
        side.addWidget(QLabel("Note of the selected mask"))
        self.mask_note = QLineEdit()
        self.mask_note.textEdited.connect(self._note_mask)
        side.addWidget(self.mask_note)
        remove = QPushButton("Delete selected mask")
        remove.clicked.connect(self._remove_mask)
        side.addWidget(remove)
        layout.addLayout(side, 2)
        return page

    def _camera_tab(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self._row(
            form,
            "Pixel format",
            self.choice("camera.pixel_format", _choices(CameraSettings, "pixel_format")),
        )
        self._row(form, "Exposure µs", self.number("camera.exposure_us", 0, 1e7, 100, 1))
        self._row(form, "Gain dB", self.number("camera.gain_db", -10, 60, 0.5, 1))
        self._row(
            form,
            "Trigger",
            self.choice("camera.trigger_mode", _choices(CameraSettings, "trigger_mode")),
        )
        self._row(form, "Trigger line", self.text("camera.trigger_source"))
        self._row(form, "ROI offset x px", self.integer("camera.roi_offset_x_px", -10, 65536))
        self._row(form, "ROI offset y px", self.integer("camera.roi_offset_y_px", -10, 65536))
        self._row(form, "ROI width px", self.integer("camera.roi_width_px", 0, 65536, off=True))
        self._row(form, "ROI height px", self.integer("camera.roi_height_px", 0, 65536, off=True))
        return page

    def _geometry_tab(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        form = QFormLayout()
        self._row(form, "Frame width px", self.integer("geometry.frame_width_px", 0, 65536))
        self._row(form, "Frame height px", self.integer("geometry.frame_height_px", 0, 65536))
        self._row(form, "Network input", self.choice("geometry.mode", _choices(Geometry, "mode")))
        self._row(form, "Tile width px", self.integer("geometry.tile_width_px", 0, 16384, off=True))
        self._row(
            form, "Tile height px", self.integer("geometry.tile_height_px", 0, 16384, off=True)
        )
        self._row(form, "Tile overlap px", self.integer("geometry.tile_overlap_px", -1, 16384))
        self._row(
            form, "Pad to a multiple of px", self.integer("geometry.size_multiple_px", 0, 1024)
        )
        layout.addLayout(form)
        grid = QGridLayout()
        grid.addWidget(QLabel("Optimisation profile (TensorRT)"), 0, 0)
        for col, dim in enumerate(("batch", "height_px", "width_px"), start=1):
            grid.addWidget(QLabel(dim.replace("_px", " px")), 0, col)
        for row, which in enumerate(("min", "opt", "max"), start=1):
            grid.addWidget(QLabel(which), row, 0)
            for col, dim in enumerate(("batch", "height_px", "width_px"), start=1):
                grid.addWidget(self.integer(f"geometry.profile.{which}.{dim}", 0, 65536), row, col)
        layout.addLayout(grid)
        layout.addStretch(1)
        return page

    # -- masks ----------------------------------------------------------------------------------

    def _masks(self) -> list[dict[str, Any]]:
        return self.raw.setdefault("masks", [])

    def _refresh_masks(self, select: int | None = None) -> None:
        masks = self.raw.get("masks", [])
        self.canvas.masks = masks
        self.mask_list.blockSignals(True)
        self.mask_list.clear()
        for i, m in enumerate(masks):
            note = f"  {m['note']}" if m.get("note") else ""
            self.mask_list.addItem(
                f"{i + 1}: ({m['x0']}, {m['y0']}) – ({m['x1']}, {m['y1']}){note}"
            )
        self.mask_list.blockSignals(False)
        if select is not None:
            self.mask_list.setCurrentRow(select)
        self.canvas.update()

    def _add_mask(self, x0: int, y0: int, x1: int, y1: int) -> None:
        self._masks().append({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "note": ""})
        self._refresh_masks(len(self._masks()) - 1)
        self.edited.emit()

    def _select_mask(self, row: int) -> None:
        self.canvas.selected = row
        masks = self.raw.get("masks", [])
        self.mask_note.setText(masks[row].get("note", "") if 0 <= row < len(masks) else "")
        self.canvas.update()

    def _note_mask(self, text: str) -> None:
        row = self.mask_list.currentRow()
        masks = self.raw.get("masks", [])
        if 0 <= row < len(masks):
            masks[row]["note"] = text
            self._refresh_masks(row)
            self.edited.emit()

    def _remove_mask(self) -> None:
        row = self.mask_list.currentRow()
        masks = self.raw.get("masks", [])
        if 0 <= row < len(masks):
            del masks[row]
            if not masks:
                self.raw.pop("masks", None)
            self._refresh_masks(min(row, len(masks) - 1))
            self.edited.emit()

    # -- loading --------------------------------------------------------------------------------

    def load(self, raw: dict[str, Any], shown: dict[str, Any], template: np.ndarray | None) -> None:
        """Edit ``raw``; inputs show ``shown`` (the validated recipe with its defaults)."""
        self._loading = True
        try:
            self.raw = copy.deepcopy(raw)
            self.shown = shown
            for path, (_widget, put) in self._bindings.items():
                put(get_path(raw, path, get_path(shown, path, _class_default(path))))
            self.canvas.set_template(template)
            self._refresh_masks(0 if self.raw.get("masks") else None)
            if not self.raw.get("masks"):
                self.mask_note.clear()
        finally:
            self._loading = False

    def mark_invalid(self, fields: frozenset[str]) -> None:
        """Outline in red every input whose field (or a parent of it) the schema refused."""
        for path, (widget, _) in self._bindings.items():
            bad = any(path == f or path.startswith(f + ".") for f in fields)
            if widget.property("invalid") != bad:
                widget.setProperty("invalid", bad)
                widget.style().unpolish(widget)
                widget.style().polish(widget)


def _class_default(path: str) -> Any:
    parts = path.split(".")
    if parts[0] == "classes" and len(parts) == 3:
        return ClassRule.model_fields[parts[2]].default
    return None
