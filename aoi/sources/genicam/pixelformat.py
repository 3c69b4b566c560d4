"""Turn a GenICam image component into the image a :class:`aoi.types.Frame` accepts.

The station works on ``uint8``/``uint16`` arrays, ``HxW`` for mono and ``HxWx3`` in OpenCV's BGR
order for colour. Cameras deliver a flat buffer in one of the PFNC pixel formats; this module
reshapes and converts it. Mono formats deeper than 8 bit (Mono10/12/14/16, unpacked, one
``uint16`` per pixel) keep their raw values: the vision stage scales them to 8 bit using
:func:`bit_depth`, so no precision is thrown away here.

Bayer trap: OpenCV names a Bayer code after the 2x2 pattern that starts at the *second* pixel of
the *second* row, PFNC after the one at the top-left pixel. So GenICam ``BayerRG8`` (an R at
(0, 0)) is ``cv2.COLOR_BayerBG2BGR``, not ``COLOR_BayerRG2BGR``.
``tests/sources/test_pixelformat.py`` checks the mapping on a mosaic built from a known colour.

Packed formats (``Mono12p``, ``Mono10Packed``, ...) are not supported: set the camera to the
unpacked variant.
"""

from __future__ import annotations

import cv2
import numpy as np

from aoi.errors import SourceError

_MONO_DEPTHS: dict[str, int] = {"Mono8": 8, "Mono10": 10, "Mono12": 12, "Mono14": 14, "Mono16": 16}

#: PFNC Bayer name (top-left 2x2 tile) -> OpenCV demosaicing code (named one pixel shifted).
_BAYER_CODES: dict[str, int] = {
    "BayerRG": cv2.COLOR_BayerBG2BGR,
    "BayerGR": cv2.COLOR_BayerGB2BGR,
    "BayerGB": cv2.COLOR_BayerGR2BGR,
    "BayerBG": cv2.COLOR_BayerRG2BGR,
}
_BAYER_DEPTHS: tuple[int, ...] = (8, 10, 12, 16)

#: Colour formats with 8 bit per channel: name -> channels per pixel.
_COLOUR_CHANNELS: dict[str, int] = {"RGB8": 3, "BGR8": 3, "RGBa8": 4, "BGRa8": 4}


def _bayer_formats() -> dict[str, int]:
    return {f"{p}{d}": d for p in _BAYER_CODES for d in _BAYER_DEPTHS}


SUPPORTED_FORMATS: tuple[str, ...] = (
    *_MONO_DEPTHS,
    *_COLOUR_CHANNELS,
    *_bayer_formats(),
)


def _unknown(pixel_format: str) -> SourceError:
    msg = (
        f"pixel format {pixel_format!r} is not supported; expected one of "
        f"{', '.join(SUPPORTED_FORMATS)} (set the camera's PixelFormat to one of them)"
    )
    return SourceError(msg)


def bit_depth(pixel_format: str) -> int:
    """Significant bits per channel of a supported pixel format (8 for Mono8, 12 for Mono12)."""
    if pixel_format in _MONO_DEPTHS:
        return _MONO_DEPTHS[pixel_format]
    if pixel_format in _COLOUR_CHANNELS:
        return 8
    bayer = _bayer_formats()
    if pixel_format in bayer:
        return bayer[pixel_format]
    raise _unknown(pixel_format)


def _as_pixels(
    data: np.ndarray, pixel_format: str, width: int, height: int, *, channels: int, depth: int
) -> np.ndarray:
    """Flat component data as ``HxW`` (or ``HxWxC``) of uint8 or uint16, checking the size."""
    dtype = np.uint8 if depth == 8 else np.uint16
    flat = np.asarray(data).reshape(-1)
    if flat.dtype != dtype:
        if flat.dtype == np.uint8 and dtype == np.uint16 and flat.size % 2 == 0:
            # Some producers hand over raw bytes; PFNC unpacked 16-bit data is little-endian.
            flat = flat.view("<u2")
        elif flat.dtype.kind in "ui" and flat.dtype.itemsize == np.dtype(dtype).itemsize:
            flat = flat.view(dtype)
        else:
            msg = (
                f"{pixel_format} data must be {np.dtype(dtype).name}, found {flat.dtype} "
                f"({flat.size} values)"
            )
            raise SourceError(msg)
    expected = width * height * channels
    if width <= 0 or height <= 0 or flat.size != expected:
        msg = (
            f"{pixel_format} {width}x{height} image must hold {expected} values "
            f"({channels} per pixel), found {flat.size}"
        )
        raise SourceError(msg)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return flat.reshape(shape)


def to_station_image(data: np.ndarray, pixel_format: str, width: int, height: int) -> np.ndarray:
    """Convert one component's flat ``data`` to a station image (mono ``HxW`` or BGR ``HxWx3``).

    Mono8 -> uint8 HxW; Mono10..16 -> uint16 HxW, values kept (see :func:`bit_depth`); RGB8,
    RGBa8, BGRa8 -> BGR uint8; BGR8 as is; Bayer 8 bit -> BGR uint8, Bayer 10..16 bit -> BGR
    uint16. Where no conversion is needed the result is a view of ``data``: a caller holding a
    driver buffer must copy the data out first.

    Raises :class:`SourceError` for an unknown format or when the data size does not match.
    """
    if pixel_format in _MONO_DEPTHS:
        return _as_pixels(
            data, pixel_format, width, height, channels=1, depth=_MONO_DEPTHS[pixel_format]
        )
    if pixel_format in _COLOUR_CHANNELS:
        channels = _COLOUR_CHANNELS[pixel_format]
        pixels = _as_pixels(data, pixel_format, width, height, channels=channels, depth=8)
        if pixel_format == "BGR8":
            return pixels
        if pixel_format == "RGB8":
            return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        if pixel_format == "RGBa8":
            return cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGR)
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR)
    bayer = _bayer_formats()
    if pixel_format in bayer:
        depth = bayer[pixel_format]
        mosaic = _as_pixels(data, pixel_format, width, height, channels=1, depth=depth)
        return cv2.cvtColor(mosaic, _BAYER_CODES[pixel_format[:7]])
    raise _unknown(pixel_format)
