"""From the station's event thread into the GUI's: the newest result, scaled, through a signal.

:meth:`ResultBridge.on_result` is an :class:`~aoi.events.EventBus` subscriber: on the bus's GUI
channel (never the cycle's thread) it only keeps a reference to the newest result. The bridge's
own display thread waits until the screen has taken the previous frame, then scales the newest
frame to the live view (OpenCV releases the GIL while it does), maps the defect boxes onto it,
leaves it in a one-slot mailbox and emits ``result_ready``. The signal crosses into the GUI
thread by a queued connection. So a busy screen skips display frames (they are never even
scaled), nothing queues up between the station and the screen, and the station never waits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal

from aoi.types import Defects, InspectionResult, Registration

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
    #: uint8 HxWx4 (BGRA), scaled for the live view; None when the cycle had no frame.
    image: np.ndarray | None
    boxes: tuple[DisplayBox, ...]


def display_image(
    image: np.ndarray, max_px: int = DISPLAY_MAX_PX, fit: tuple[int, int] | None = None
) -> tuple[np.ndarray, float]:
    """The frame as 8-bit BGRA, scaled to ``fit`` (w, h) or shrunk to ``max_px``; and the scale
    applied. Scaling here, off the GUI thread (OpenCV releases the GIL), lets the screen
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
    # BGRA: the layout of the screen's own pixels, so painting it is a plain copy.
    code = cv2.COLOR_GRAY2BGRA if image.ndim == 2 else cv2.COLOR_BGR2BGRA
    return cv2.cvtColor(image, code), scale


def frame_boxes(
    defects: Defects,
    review: Defects,
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
    """Carries results from the event thread to the GUI thread, newest first; see the module.

    A context manager: its display thread prepares one frame at a time, and only once the
    screen has taken the previous one, so frames the screen would skip are never scaled.
    """

    result_ready = Signal()

    def __init__(self, max_px: int = DISPLAY_MAX_PX) -> None:
        super().__init__()
        self.max_px = max_px
        #: The live view's size in pixels (w, h), set by the GUI thread; frames are scaled to it.
        self.fit: tuple[int, int] | None = None
        #: While False the subscriber returns at once (``aoi gui --bench``'s detached phases).
        self.attached = True
        self.received = 0
        self.prepared = 0
        self.taken = 0
        self._cond = threading.Condition()
        self._raw: InspectionResult | None = None
        self._latest: DisplayFrame | None = None
        self._stop = False
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ResultBridge:
        self._stop = False
        self._thread = threading.Thread(target=self._prepare, name="aoi-gui-display", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def on_result(self, result: InspectionResult) -> None:
        """EventBus subscriber (the bus's GUI channel): keep the newest result, nothing else."""
        if not self.attached:
            return
        with self._cond:
            self.received += 1
            self._raw = result
            self._cond.notify()

    def _prepare(self) -> None:
        """The display thread: scale the newest result once the screen took the last frame."""
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stop or (self._raw is not None and self._latest is None)
                )
                if self._stop:
                    return
                result, self._raw = self._raw, None
            assert result is not None
            frame = prepare(result, self.max_px, self.fit)
            with self._cond:
                self._latest = frame
                self.prepared += 1
            self.result_ready.emit()

    def take(self) -> DisplayFrame | None:
        """The newest prepared frame not shown yet (GUI thread), or None."""
        with self._cond:
            frame, self._latest = self._latest, None
            if frame is not None:
                self.taken += 1
                self._cond.notify()
        return frame

    @property
    def idle(self) -> bool:
        """Nothing waits to be scaled or shown."""
        with self._cond:
            return self._raw is None and self._latest is None

    @property
    def skipped(self) -> int:
        """Results never shown because a newer one came before the screen was ready."""
        with self._cond:
            pending = (self._raw is not None) + (self._latest is not None)
            return self.received - self.taken - pending
