"""Colours, fonts and the style sheet: one place, so every screen speaks the same visual language.

Verdict colours follow the line's stack light (green OK, red NG, amber REVIEW) with ERROR in
violet, so "the station could not inspect" is never mistaken for "the board is bad". Defect class
colours are the Okabe-Ito palette, told apart by colour-blind operators too.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from aoi.types import DEFECT_CLASSES, Verdict
from ui.logic.health import Level

BACKGROUND = "#1e2329"
PANEL = "#2a3038"
PANEL_BORDER = "#3a424d"
TEXT = "#eef1f4"
TEXT_DIM = "#a9b3bf"

VERDICT_BG: dict[Verdict | None, str] = {
    Verdict.OK: "#1f9d55",
    Verdict.NG: "#d32f2f",
    Verdict.REVIEW: "#f2a900",
    Verdict.ERROR: "#7b3fbf",
    None: "#3a424d",
}
VERDICT_FG: dict[Verdict | None, str] = {
    Verdict.OK: "#ffffff",
    Verdict.NG: "#ffffff",
    Verdict.REVIEW: "#1b1b1b",
    Verdict.ERROR: "#ffffff",
    None: TEXT_DIM,
}

#: The banner while the station does not inspect: grey, its word in the state's colour, so
#: a stopped station never shows a verdict's green or red from across the room.
STATE_BG = "#3d444d"
STATE_FG = {"STOPPED": "#d5dae0", "STOPPING": "#d5dae0", "FAULT": "#ff6b61", "OFFLINE": "#d5dae0"}

LEVEL_COLOUR: dict[Level, str] = {
    Level.OFF: "#6b7580",
    Level.OK: "#2ecc71",
    Level.WARN: "#f2a900",
    Level.FAULT: "#ff3b30",
}

_CLASS_HEX = {
    "open": "#e69f00",
    "short": "#d55e00",
    "mousebite": "#56b4e9",
    "spur": "#f0e442",
    "spurious_copper": "#009e73",
    "pin_hole": "#cc79a7",
}
assert set(_CLASS_HEX) == set(DEFECT_CLASSES)


def class_colour(name: str) -> QColor:
    return QColor(_CLASS_HEX.get(name, "#ffffff"))


#: Fonts were chosen for a 1600x900 window; they grow and shrink with the window's height
#: (arm's-length reading on a 1080-line panel, still fitting a 768-line one).
DESIGN_HEIGHT_PX = 900
DESIGN_WIDTH_PX = 1200
SCALE_LIMITS = (0.85, 1.5)
_scale = [1.0]


def scale_for(width_px: int, height_px: int) -> float:
    """The font scale for a window of this size: by height, held back by a narrow width."""
    s = min(height_px / DESIGN_HEIGHT_PX, width_px / DESIGN_WIDTH_PX)
    return round(min(max(s, SCALE_LIMITS[0]), SCALE_LIMITS[1]), 2)


def set_scale(scale: float) -> bool:
    """Make ``scale`` the one every font uses from now on; True when it changed."""
    changed = abs(scale - _scale[0]) > 1e-6
    _scale[0] = scale
    return changed


def scale() -> float:
    return _scale[0]


def px(design_px: float) -> int:
    """A size in pixels at the current scale (minimum sizes that hold scaled text)."""
    return round(design_px * _scale[0])


def font(point_size: float, *, bold: bool = False) -> QFont:
    """The station's font at ``point_size`` (at design scale) times the window's scale."""
    f = QFont("DejaVu Sans")
    f.setPointSizeF(point_size * _scale[0])
    f.setBold(bold)
    return f


def set_font(widget: QWidget, point_size: float, *, bold: bool = False) -> None:
    """Give a widget its own font, remembered so :func:`rescale` can size it again."""
    widget.setProperty("aoi_font", (point_size, bold))
    widget.setFont(font(point_size, bold=bold))


def rescale(root: QWidget) -> None:
    """Apply the current scale to ``root``: its style sheet and every :func:`set_font` font."""
    root.setStyleSheet(style_sheet())
    root.setFont(font(11))
    for w in root.findChildren(QWidget):
        spec = w.property("aoi_font")
        if spec:
            w.setFont(font(spec[0], bold=bool(spec[1])))
        w.updateGeometry()


def lock_icon(colour: str = "#8a949e", size: int = 32) -> QIcon:
    """A padlock, drawn (the station's fonts have no lock glyph)."""
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    c = QColor(colour)
    p.setPen(QPen(c, size / 9))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawArc(QRectF(size * 0.28, size * 0.1, size * 0.44, size * 0.5), 0, 180 * 16)
    p.drawLine(size * 0.28, size * 0.35, size * 0.28, size * 0.48)
    p.drawLine(size * 0.72, size * 0.35, size * 0.72, size * 0.48)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(c)
    p.drawRoundedRect(QRectF(size * 0.18, size * 0.45, size * 0.64, size * 0.45), 3, 3)
    p.end()
    return QIcon(pm)


def _pt(size: float) -> str:
    return f"{size * _scale[0]:.1f}"


def style_sheet() -> str:
    """The style sheet at the current scale."""
    return f"""
QWidget {{ background: {BACKGROUND}; color: {TEXT}; }}
QFrame#panel {{ background: {PANEL}; border: 1px solid {PANEL_BORDER}; border-radius: 6px; }}
QLabel {{ background: transparent; }}
QLabel#title {{ font-size: {_pt(10)}pt; color: {TEXT_DIM}; font-weight: bold;
               letter-spacing: 1px; }}
QLabel#dim {{ color: {TEXT_DIM}; }}
QLabel#error {{ color: #ff8a80; }}
QLabel#good {{ color: #7ee2a8; }}
QPushButton {{ background: #3a4450; border: 1px solid #4b5663; border-radius: 5px;
               padding: 6px 14px; }}
QPushButton:hover {{ background: #465261; }}
QPushButton:disabled {{ color: #6b7580; background: #2f363f; }}
QPushButton#nav {{ font-size: {_pt(13)}pt; padding: 8px 10px; border-radius: 0; border: none;
                   border-bottom: 3px solid transparent; background: transparent; }}
QPushButton#nav:checked {{ border-bottom: 3px solid #4aa3ff; color: #ffffff; }}
QPushButton#start {{ background: #1f9d55; font-size: {_pt(16)}pt; font-weight: bold;
                     padding: 8px; }}
QPushButton#start:disabled {{ background: #24533a; color: #8aa596; }}
QPushButton#stop {{ background: #c62828; font-size: {_pt(16)}pt; font-weight: bold;
                    padding: 8px; }}
QPushButton#stop:disabled {{ background: #5a2a2a; color: #a58a8a; }}
QPushButton#decision {{ font-size: {_pt(13)}pt; padding: 10px; }}
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox, QPlainTextEdit, QTextEdit {{
    background: #14181d; border: 1px solid #4b5663; border-radius: 4px; padding: 3px; }}
QLineEdit[invalid="true"], QDoubleSpinBox[invalid="true"], QSpinBox[invalid="true"] {{
    border: 2px solid #ff3b30; }}
QTableWidget, QListWidget, QTreeWidget {{ background: #14181d; alternate-background-color: #1a1f25;
    gridline-color: #333a44; border: 1px solid {PANEL_BORDER}; }}
QHeaderView::section {{ background: {PANEL}; color: {TEXT_DIM}; border: none; padding: 4px; }}
QListWidget::item:selected, QTableWidget::item:selected {{ background: #2d5d8f; }}
QTabWidget::pane {{ border: 1px solid {PANEL_BORDER}; }}
QTabBar::tab {{ background: {PANEL}; padding: 8px 16px; border: 1px solid {PANEL_BORDER}; }}
QTabBar::tab:selected {{ background: #3a4450; }}
QGroupBox {{ border: 1px solid {PANEL_BORDER}; border-radius: 6px; margin-top: 14px;
             padding: 8px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; color: {TEXT_DIM}; }}
"""


STYLE_SHEET = style_sheet()
