"""Board images on screen: numpy to QImage, fitting, defect boxes, the live view and crop views."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui import theme
from ui.bridge import DisplayBox, DisplayFrame
from ui.widgets.basics import opaque

_FORMATS = {
    1: QImage.Format.Format_Grayscale8,
    3: QImage.Format.Format_RGB888,
    4: QImage.Format.Format_RGB32,  # BGRA bytes: what the screen's backing store holds
}


def to_qimage(image: np.ndarray, *, copy: bool = True) -> QImage:
    """A QImage of a uint8 grey, RGB or BGRA array; without ``copy`` it borrows the array's
    memory, so the caller keeps the array alive as long as the image."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    q = QImage(image.data, w, h, image.strides[0], _FORMATS[channels])
    return q.copy() if copy else q


def fit_rect(image_w: int, image_h: int, area: QRectF) -> QRectF:
    """Where an image goes inside ``area``, scaled to fit and centred."""
    s = min(area.width() / image_w, area.height() / image_h)
    w, h = image_w * s, image_h * s
    return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)


#: The smallest box drawn around a defect, in screen pixels.
MIN_BOX_PX = 14


def draw_box(
    p: QPainter, rect: QRectF, colour: QColor, label: str, *, dashed: bool, bounds: QRectF
) -> None:
    """A defect box with its label on a filled tab above it (below at the top edge), the tab
    kept inside ``bounds``."""
    # Cosmetic: three screen pixels wide at any zoom; tiny defects get a box big enough to see.
    pen = QPen(colour, 3)
    pen.setCosmetic(True)
    grow = max(0.0, MIN_BOX_PX - rect.width()) / 2, max(0.0, MIN_BOX_PX - rect.height()) / 2
    rect = rect.adjusted(-grow[0], -grow[1], grow[0], grow[1])
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    p.setPen(pen)
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawRect(rect)
    if not label:
        return
    p.setFont(theme.font(10, bold=True))
    metrics = p.fontMetrics()
    tw, th = metrics.horizontalAdvance(label) + 8, metrics.height() + 2
    y = rect.top() - th if rect.top() - th >= bounds.top() else rect.bottom()
    x = min(max(rect.left() - 1.5, bounds.left()), bounds.right() - tw)
    tab = QRectF(x, y, tw, th)
    p.fillRect(tab, colour)
    p.setPen(QColor("#000000"))
    p.drawText(tab, Qt.AlignmentFlag.AlignCenter, label)


class ImageView(QWidget):
    """The live board image with its defects boxed in class colours, label and score.

    Wheel zooms about the pointer, a drag pans, a double click fits the image again.
    """

    def __init__(
        self, placeholder: str = "No image yet", on_resize: Callable[[int, int], None] | None = None
    ) -> None:
        super().__init__()
        self.on_resize = on_resize
        self._bg = opaque(self, "#0d1014")
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.placeholder = placeholder
        self._image: QImage | None = None
        self._array: np.ndarray | None = None
        self._boxes: tuple[DisplayBox, ...] = ()
        self._caption = ""
        #: Where the image is drawn while zoomed (None: fitted to the widget).
        self.view: QRectF | None = None
        self._drag: QPointF | None = None

    def set_caption(self, text: str) -> None:
        """A line over the image's top edge ("held" boards say so here)."""
        if text != self._caption:
            self._caption = text
            self.update()

    def _fit(self) -> QRectF:
        assert self._image is not None
        return fit_rect(self._image.width(), self._image.height(), QRectF(self.rect()))

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if self._image is None:
            return
        self.zoom(1.25 ** (event.angleDelta().y() / 120), event.position())

    def zoom(self, factor: float, at: QPointF) -> None:
        """Zoom by ``factor`` keeping the image point under ``at`` where it is."""
        cur = self.view if self.view is not None else self._fit()
        new = QRectF(
            at.x() - (at.x() - cur.x()) * factor,
            at.y() - (at.y() - cur.y()) * factor,
            cur.width() * factor,
            cur.height() * factor,
        )
        fit = self._fit()
        self.view = None if new.width() <= fit.width() else new
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._drag = event.position() if self.view is not None else None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag is not None and self.view is not None:
            self.view.translate(event.position() - self._drag)
            self._drag = event.position()
            self.update()

    def mouseReleaseEvent(self, _event: QMouseEvent) -> None:  # noqa: N802
        self._drag = None

    def mouseDoubleClickEvent(self, _event: QMouseEvent) -> None:  # noqa: N802
        self.view = None
        self.update()

    def set_frame(self, frame: DisplayFrame | None) -> None:
        if frame is None or frame.image is None:
            self._image, self._boxes = None, ()
            if frame is not None:
                self.placeholder = f"No image: {frame.result.error}"
        else:
            self._array = frame.image  # the image borrows its memory: no copy per frame
            self._image, self._boxes = to_qimage(frame.image, copy=False), frame.boxes
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.view = None
        if self.on_resize is not None:
            self.on_resize(self.width(), self.height())

    def set_image(self, image: np.ndarray | None) -> None:
        """Show a plain 8-bit image (grey or RGB) without boxes."""
        self._image = to_qimage(image) if image is not None else None
        self._boxes = ()
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), self._bg)
        if self._image is None:
            p.setPen(QColor(theme.TEXT_DIM))
            p.setFont(theme.font(14))
            p.drawText(
                self.rect(),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )
            return
        target = self.view if self.view is not None else self._fit()
        # Fitted and scaled by the bridge already: drawn 1:1.
        if self.view is None and abs(target.width() - self._image.width()) < 1.5:
            target = QRectF(
                round(target.x()), round(target.y()), self._image.width(), self._image.height()
            )
            p.drawImage(target.topLeft(), self._image)
        else:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            p.drawImage(target, self._image)
        s = target.width() / self._image.width()
        for b in self._boxes:
            rect = QRectF(
                target.x() + b.x0 * s - 3,
                target.y() + b.y0 * s - 3,
                (b.x1 - b.x0) * s + 6,
                (b.y1 - b.y0) * s + 6,
            )
            label = f"{b.class_name.replace('_', ' ')} {b.score:.2f}"
            colour = theme.class_colour(b.class_name)
            draw_box(p, rect, colour, label, dashed=b.review, bounds=target & QRectF(self.rect()))
        if self._caption:
            p.setFont(theme.font(11, bold=True))
            band = QRectF(0, 0, self.width(), p.fontMetrics().height() + 8)
            p.fillRect(band, QColor(0, 0, 0, 170))
            p.setPen(QColor("#ffffff"))
            p.drawText(band.adjusted(8, 0, -8, 0), Qt.AlignmentFlag.AlignVCenter, self._caption)


class CropView(QWidget):
    """A crop enlarged with crisp pixels, with the defect's box drawn on it."""

    def __init__(self, caption: str) -> None:
        super().__init__()
        self.caption = caption
        self.setMinimumSize(150, 150)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.image: np.ndarray | None = None
        self.box: tuple[int, int, int, int] | None = None
        self.colour = QColor("#ffffff")
        self.message = "Select a defect"

    def set_crop(
        self,
        image: np.ndarray | None,
        box: tuple[int, int, int, int] | None,
        colour: QColor,
        message: str = "",
    ) -> None:
        self.image, self.box, self.colour, self.message = image, box, colour, message
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        p = QPainter(self)
        r = QRectF(self.rect())
        p.fillRect(r, QColor("#0d1014"))
        p.setPen(QColor(theme.TEXT_DIM))
        p.setFont(theme.font(10, bold=True))
        p.drawText(r.adjusted(6, 4, -6, 0), Qt.AlignmentFlag.AlignLeft, self.caption.upper())
        area = r.adjusted(6, 24, -6, -6)
        if self.image is None:
            p.setFont(theme.font(11))
            p.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            return
        h, w = self.image.shape[:2]
        target = fit_rect(w, h, area)
        p.drawImage(target, to_qimage(self.image))  # no smoothing: pixels stay crisp
        if self.box is not None:
            s = target.width() / w
            x0, y0, x1, y1 = self.box
            rect = QRectF(
                target.x() + x0 * s - 2,
                target.y() + y0 * s - 2,
                (x1 - x0) * s + 4,
                (y1 - y0) * s + 4,
            )
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            draw_box(p, rect, self.colour, "", dashed=False, bounds=target)
