"""From the station's event thread into the GUI's: the latest result, downscaled, through a signal.

:meth:`ResultBridge.on_result` is an :class:`~aoi.events.EventBus` subscriber. It runs on the bus's
thread for the GUI, never on the cycle's: it shrinks the frame for display (OpenCV releases the
GIL while it does), maps the defect boxes onto the shrunk frame, leaves the newest result in a
one-slot mailbox and emits ``result_ready`` only when the slot was empty. The signal crosses to
the GUI thread by a queued connection; the GUI takes whatever is newest when it gets there. So a
busy screen skips display frames, the queue between them never grows, and the station never
waits for the screen.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal

from aoi.types import Defect, InspectionResult, Registration

#: Longest side of a display frame; the screen's image panel is smaller than this.
DISPLAY_MAX_PX = 960


@dataclass(frozen=True)
class DisplayBox:
    """A defect as drawn: its box on the display frame, class, score, and band."""

    x0: float
    y0: float
    x1: float
    y1: float
    class_name: str
    score: float
    review: bool


@dataclass(frozen=True)
class DisplayFrame:
    result: InspectionResult
    #: uint8 HxW (grey) or HxWx3 (RGB), at most DISPLAY_MAX_PX on its longest side; None when
    #: the cycle had no frame (camera timeout).
    image: np.ndarray | None
    boxes: tuple[DisplayBox, ...]


def display_image(
    image: np.ndarray, max_px: int = DISPLAY_MAX_PX, fit: tuple[int, int] | None = None
) -> tuple[np.ndarray, float]:
    """The frame as 8-bit grey or RGB, scaled to ``fit`` (w, h) or shrunk to ``max_px``; and the
    scale applied. Scaling here, off the GUI thread (OpenCV releases the GIL), lets the screen
    draw the image 1:1."""
    h, w = image.shape[:2]
    if fit is not None and fit[0] > 0 and fit[1] > 0:
        scale = min(fit[0] / w, fit[1] / h, 2048 / max(h, w))
    else:
        scale = min(1.0, max_px / max(h, w))
    if abs(scale - 1.0) > 1e-3:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=method)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image), scale


def frame_boxes(
    defects: tuple[Defect, ...],
    review: tuple[Defect, ...],
    registration: Registration | None,
    scale: float,
) -> tuple[DisplayBox, ...]:
    """Defect boxes (template coordinates) on the frame as taken, scaled for display."""
    m = np.eye(2, 3) if registration is None else registration.transform.astype(np.float64)
    out = []
    for band, items in ((False, defects), (True, review)):
        for d in items:
            x0, y0, x1, y1 = d.bbox_xyxy_px
            corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64)
            pts = corners @ m.T * scale
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            out.append(
                DisplayBox(
                    float(lo[0]),
                    float(lo[1]),
                    float(hi[0]),
                    float(hi[1]),
                    d.class_name,
                    d.score,
                    band,
                )
            )
    return tuple(out)


def prepare(
    result: InspectionResult, max_px: int = DISPLAY_MAX_PX, fit: tuple[int, int] | None = None
) -> DisplayFrame:
    if result.frame is None:
        return DisplayFrame(result, None, ())
    image, scale = display_image(result.frame.image, max_px, fit)
    boxes = frame_boxes(result.defects, result.review_defects, result.registration, scale)
    return DisplayFrame(result, image, boxes)


class ResultBridge(QObject):
    """Carries results from the event thread to the GUI thread, newest first; see the module."""

    result_ready = Signal()

    def __init__(self, max_px: int = DISPLAY_MAX_PX) -> None:
        super().__init__()
        self.max_px = max_px
        #: The live view's size in pixels (w, h), set by the GUI thread; frames are scaled to it.
        self.fit: tuple[int, int] | None = None
        #: While False the subscriber returns at once (``aoi gui --bench``'s detached phases).
        self.attached = True
        self.received = 0
        self.taken = 0
        self._lock = threading.Lock()
        self._latest: DisplayFrame | None = None

    def on_result(self, result: InspectionResult) -> None:
        """EventBus subscriber (the bus's GUI thread)."""
        if not self.attached:
            return
        frame = prepare(result, self.max_px, self.fit)
        with self._lock:
            self.received += 1
            was_empty = self._latest is None
            self._latest = frame
        if was_empty:
            self.result_ready.emit()

    def take(self) -> DisplayFrame | None:
        """The newest result not shown yet (GUI thread), or None."""
        with self._lock:
            frame, self._latest = self._latest, None
            if frame is not None:
                self.taken += 1
        return frame

    @property
    def skipped(self) -> int:
        """Display frames replaced by a newer one before the screen got to them."""
        with self._lock:
            return self.received - self.taken - (self._latest is not None)
