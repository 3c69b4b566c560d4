"""Pixel conversions every layer shares: a camera frame or template image as uint8 grey."""

from __future__ import annotations

import cv2
import numpy as np

from aoi.errors import FrameError


def to_mono8(image: np.ndarray, bit_depth: int = 0) -> np.ndarray:
    """The frame as uint8 HxW: colour to grey, 10/12/16-bit scaled down by its bit depth."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.dtype == np.uint16:
        depth = bit_depth or 16
        image = (image >> (depth - 8)).clip(0, 255).astype(np.uint8)
    if image.dtype != np.uint8:
        msg = f"frame must be uint8 or uint16, got {image.dtype}"
        raise FrameError(msg)
    return np.ascontiguousarray(image)
