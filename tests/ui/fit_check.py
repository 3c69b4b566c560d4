"""What "text never clips" means, checked with Qt's own font metrics on a shown window.

Every visible labelled widget (labels, buttons, check boxes, group box titles, table headers)
must lie inside the window, and its text must fit its widget: one line no wider than the
contents, wrapped text no taller than the label and no word wider than it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QCheckBox,
    QGroupBox,
    QHeaderView,
    QLabel,
    QListView,
    QPushButton,
    QStyle,
    QStyleOptionButton,
    QWidget,
)

_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Misfit:
    widget: str
    text: str
    why: str

    def __str__(self) -> str:
        return f"{self.widget} {self.text[:60]!r}: {self.why}"


def _name(w: QWidget) -> str:
    return f"{type(w).__name__}({w.objectName() or hex(id(w))[-5:]})"


def _plain(text: str) -> str:
    if "<" in text and _TAG.search(text):
        text = _TAG.sub("", text.replace("<br>", "\n")).replace("&nbsp;", " ")
        text = text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    return text


def _scrolled(w: QWidget) -> bool:
    """Inside a scroll area's contents: it may be scrolled out of view, legitimately."""
    p = w.parentWidget()
    while p is not None:
        if isinstance(p, QAbstractScrollArea) and not isinstance(w, QHeaderView):
            return True
        p = p.parentWidget()
    return False


def _label_misfit(w: QLabel) -> str:
    text = _plain(w.text())
    if not text.strip() or (w.pixmap() is not None and not w.pixmap().isNull()):
        return ""
    fm = QFontMetrics(w.font())
    cr = w.contentsRect().adjusted(w.margin(), w.margin(), -w.margin(), -w.margin())
    width = cr.width() - (w.indent() if w.indent() > 0 else 0)
    if w.wordWrap():
        widest = max((fm.horizontalAdvance(word) for word in text.split()), default=0)
        if widest > width:
            return f"a word needs {widest} px, the label is {width} px wide"
        need = fm.boundingRect(QRect(0, 0, width, 100_000), Qt.TextFlag.TextWordWrap, text)
        if need.height() > cr.height() + 1:
            return f"wrapped text needs {need.height()} px height, the label has {cr.height()}"
        return ""
    widest = max(fm.horizontalAdvance(line) for line in text.splitlines())
    if widest > width:
        return f"text needs {widest} px, the label is {width} px wide"
    lines = len(text.splitlines())
    if fm.height() * lines > cr.height() + 2:
        return f"{lines} line(s) need {fm.height() * lines} px height, the label has {cr.height()}"
    return ""


def _button_misfit(w: QPushButton | QCheckBox) -> str:
    text = w.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
    if not text:
        return ""
    opt = QStyleOptionButton()
    w.initStyleOption(opt)
    element = (
        QStyle.SubElement.SE_CheckBoxContents
        if isinstance(w, QCheckBox)
        else QStyle.SubElement.SE_PushButtonContents
    )
    room = w.style().subElementRect(element, opt, w).width()
    need = QFontMetrics(w.font()).horizontalAdvance(text)
    if not w.icon().isNull():
        need += w.iconSize().width() + 4
    return f"text needs {need} px, the button has {room}" if need > room else ""


def _header_misfits(h: QHeaderView) -> list[Misfit]:
    model = h.model()
    if model is None:
        return []
    out = []
    fm = QFontMetrics(h.font())
    for i in range(h.count()):
        if h.isSectionHidden(i) or h.sectionSize(i) == 0:
            continue
        text = str(model.headerData(i, h.orientation()) or "")
        need = fm.horizontalAdvance(text) + 8  # the style sheet's padding: 4 px each side
        if h.orientation() is Qt.Orientation.Horizontal and need > h.sectionSize(i):
            out.append(Misfit(_name(h), text, f"needs {need} px, column is {h.sectionSize(i)}"))
    return out


def misfits(window: QWidget) -> list[Misfit]:
    """Everything on the shown window whose text does not fit or that lies outside it."""
    out: list[Misfit] = []
    frame = window.rect()
    kinds = (QLabel, QPushButton, QCheckBox, QGroupBox, QHeaderView)
    for w in window.findChildren(QWidget):
        if not isinstance(w, kinds) or not w.isVisibleTo(window) or w.isWindow():
            continue
        if w.window() is not window:
            continue
        text = getattr(w, "text", lambda: "")() if not isinstance(w, QGroupBox) else w.title()
        if isinstance(w, QHeaderView):
            text = "header"
        if not text:
            continue
        box = QRect(w.mapTo(window, QPoint(0, 0)), w.size())
        if not _scrolled(w) and not frame.contains(box):
            out.append(Misfit(_name(w), text, f"lies outside the window: {box} in {frame}"))
        if isinstance(w, QLabel):
            why = _label_misfit(w)
        elif isinstance(w, QPushButton | QCheckBox):
            why = _button_misfit(w)
        elif isinstance(w, QGroupBox):
            need = QFontMetrics(w.font()).horizontalAdvance(w.title()) + 16
            why = f"title needs {need} px, box is {w.width()}" if need > w.width() else ""
        else:
            out.extend(_header_misfits(w))
            why = ""
        if why:
            out.append(Misfit(_name(w), text, why))
    # A list (the review queue) whose lines do not fit scrolls sideways: they must be cut with
    # an ellipsis instead, so an operator never has to scroll to read a row's start.
    for view in window.findChildren(QListView):
        if view.isVisibleTo(window) and view.horizontalScrollBar().isVisible():
            out.append(Misfit(_name(view), "list", "its rows scroll sideways"))
    return out
