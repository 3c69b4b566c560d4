"""Table tests for the GenICam pixel format conversion, Bayer colour order included."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import numpy as np
import pytest

from aoi.errors import SourceError
from aoi.sources.genicam.pixelformat import SUPPORTED_FORMATS, bit_depth, to_station_image
from aoi.types import Frame

W, H = 24, 16

#: A known colour (B, G, R) per quadrant, so a wrong channel order or Bayer phase shows.
_QUADRANT_BGR = ((30, 120, 220), (200, 60, 10), (90, 250, 40), (10, 10, 180))


def _colour_image(depth: int = 8) -> np.ndarray:
    """A BGR image of four flat-coloured quadrants (each even-sized, so Bayer tiles stay inside)."""
    dtype = np.uint8 if depth == 8 else np.uint16
    scale = 1 if depth == 8 else (1 << (depth - 8))
    img = np.zeros((H, W, 3), dtype)
    hh, hw = H // 2, W // 2
    for i, (y, x) in enumerate(((0, 0), (0, hw), (hh, 0), (hh, hw))):
        img[y : y + hh, x : x + hw] = np.array(_QUADRANT_BGR[i]) * scale
    return img


def _bayer_mosaic(bgr: np.ndarray, pattern: str) -> np.ndarray:
    """Sample ``bgr`` the way a sensor with the PFNC ``pattern`` (top-left 2x2, e.g. RGGB) does."""
    channel = {"B": 0, "G": 1, "R": 2}
    mosaic = np.zeros(bgr.shape[:2], bgr.dtype)
    for dy in range(2):
        for dx in range(2):
            c = channel[pattern[2 * dy + dx]]
            mosaic[dy::2, dx::2] = bgr[dy::2, dx::2, c]
    return mosaic


def _interior(img: np.ndarray) -> np.ndarray:
    """Leave out the pixels next to a quadrant edge, where demosaicing blends colours."""
    mask = np.ones(img.shape[:2], bool)
    for y in (0, H // 2 - 1, H // 2, H - 1):
        mask[max(y - 1, 0) : y + 2, :] = False
    for x in (0, W // 2 - 1, W // 2, W - 1):
        mask[:, max(x - 1, 0) : x + 2] = False
    return img[mask]


@pytest.mark.parametrize(
    ("pixel_format", "pattern", "depth"),
    [
        ("BayerRG8", "RGGB", 8),
        ("BayerGR8", "GRBG", 8),
        ("BayerGB8", "GBRG", 8),
        ("BayerBG8", "BGGR", 8),
        ("BayerRG12", "RGGB", 12),
        ("BayerBG16", "BGGR", 16),
    ],
)
def test_bayer_colour_comes_back(pixel_format: str, pattern: str, depth: int) -> None:
    truth = _colour_image(depth)
    mosaic = _bayer_mosaic(truth, pattern)
    out = to_station_image(mosaic.reshape(-1), pixel_format, W, H)
    assert out.shape == (H, W, 3)
    assert out.dtype == truth.dtype
    tolerance = 2 * (1 if depth == 8 else (1 << (depth - 8)))
    diff = np.abs(_interior(out).astype(int) - _interior(truth).astype(int))
    assert diff.max() <= tolerance, f"{pixel_format}: colour off by {diff.max()}"


def test_a_wrong_bayer_code_would_be_caught() -> None:
    """The mosaic check is sharp: an RGGB mosaic decoded as BGGR swaps red and blue."""
    truth = _colour_image()
    out = to_station_image(_bayer_mosaic(truth, "RGGB").reshape(-1), "BayerBG8", W, H)
    assert np.abs(_interior(out).astype(int) - _interior(truth).astype(int)).max() > 50


def _flat(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img).reshape(-1)


_BGR = _colour_image()
_ALPHA = np.full((H, W, 1), 77, np.uint8)
_MONO8 = (np.arange(H * W) % 256).astype(np.uint8).reshape(H, W)
_MONO12 = (np.arange(H * W) * 11 % 4096).astype(np.uint16).reshape(H, W)


@pytest.mark.parametrize(
    ("pixel_format", "data", "expected"),
    [
        ("Mono8", _flat(_MONO8), _MONO8),
        ("Mono10", _flat(_MONO12 % 1024), _MONO12 % 1024),
        ("Mono12", _flat(_MONO12), _MONO12),
        ("Mono12", _flat(_MONO12).view(np.uint8), _MONO12),  # raw bytes from a producer
        ("Mono14", _flat(_MONO12 * 4), _MONO12 * 4),
        ("Mono16", _flat(_MONO12 * 16), _MONO12 * 16),
        ("RGB8", _flat(_BGR[:, :, ::-1]), _BGR),
        ("BGR8", _flat(_BGR), _BGR),
        ("RGBa8", _flat(np.concatenate([_BGR[:, :, ::-1], _ALPHA], axis=2)), _BGR),
        ("BGRa8", _flat(np.concatenate([_BGR, _ALPHA], axis=2)), _BGR),
    ],
)
def test_formats_convert_to_station_images(
    pixel_format: str, data: np.ndarray, expected: np.ndarray
) -> None:
    out = to_station_image(data, pixel_format, W, H)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)
    Frame(image=out, frame_id=0, available_ns=0, source="test")  # the Frame accepts it


@pytest.mark.parametrize(
    ("pixel_format", "depth", "raises"),
    [
        ("Mono8", 8, nullcontext()),
        ("Mono10", 10, nullcontext()),
        ("Mono12", 12, nullcontext()),
        ("Mono16", 16, nullcontext()),
        ("RGB8", 8, nullcontext()),
        ("RGBa8", 8, nullcontext()),
        ("BayerGB8", 8, nullcontext()),
        ("BayerRG12", 12, nullcontext()),
        ("Mono12p", 0, pytest.raises(SourceError, match=r"'Mono12p' is not supported")),
        ("YUV422_8", 0, pytest.raises(SourceError, match=r"expected one of Mono8")),
    ],
)
def test_bit_depth(pixel_format: str, depth: int, raises: AbstractContextManager[object]) -> None:
    with raises:
        assert bit_depth(pixel_format) == depth


def test_every_supported_format_has_a_depth() -> None:
    for pixel_format in SUPPORTED_FORMATS:
        assert bit_depth(pixel_format) in (8, 10, 12, 14, 16)


@pytest.mark.parametrize(
    ("pixel_format", "data", "message"),
    [
        (
            "Coord3D_ABC32f",
            np.zeros(W * H, np.float32),
            r"pixel format 'Coord3D_ABC32f' is not supported; expected one of .*BayerBG8",
        ),
        (
            "Mono8",
            np.zeros(W * H - 1, np.uint8),
            rf"Mono8 {W}x{H} image must hold {W * H} values \(1 per pixel\), found {W * H - 1}",
        ),
        (
            "RGB8",
            np.zeros(W * H, np.uint8),
            rf"RGB8 {W}x{H} image must hold {W * H * 3} values \(3 per pixel\), found {W * H}",
        ),
        (
            "Mono8",
            np.zeros(W * H, np.uint16),
            r"Mono8 data must be uint8, found uint16",
        ),
        (
            "Mono12",
            np.zeros(W * H, np.float32),
            r"Mono12 data must be uint16, found float32",
        ),
    ],
)
def test_errors_say_expected_and_found(pixel_format: str, data: np.ndarray, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        to_station_image(data, pixel_format, W, H)
