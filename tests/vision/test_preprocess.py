"""Tiling covers every frame pixel, each owned by exactly one tile; inputs are padded."""

from __future__ import annotations

import numpy as np
import pytest

from aoi.errors import FrameError
from aoi.pixels import to_mono8
from aoi.recipe import Geometry
from aoi.vision.preprocess import InputBuilder, plan_tiles


def _geometry(w: int, h: int, mode: str = "full", tile: int = 256, batch: int = 4) -> Geometry:
    shape = {"batch": batch, "height_px": 16, "width_px": 16}
    big = {"batch": batch, "height_px": 8192, "width_px": 8192}
    return Geometry.model_validate(
        {
            "frame_width_px": w,
            "frame_height_px": h,
            "mode": mode,
            "tile_width_px": tile,
            "tile_height_px": tile,
            "tile_overlap_px": 32,
            "profile": {"min": {**shape, "batch": 1}, "opt": big, "max": big},
        }
    )


@pytest.mark.parametrize(
    ("w", "h", "tile", "expected_tiles"),
    [(640, 640, 256, 9), (4096, 3000, 1024, 15), (1000, 300, 256, 10), (200, 200, 256, 1)],
)
def test_tiles_cover_frame_and_own_each_pixel_once(
    w: int, h: int, tile: int, expected_tiles: int
) -> None:
    tiles = plan_tiles(_geometry(w, h, "tiles", tile))
    assert len(tiles) == expected_tiles
    covered = np.zeros((h, w), np.int32)
    owned = np.zeros((h, w), np.int32)
    for t in tiles:
        assert t.x0 >= 0 and t.y0 >= 0
        assert t.x0 + t.width_px <= w and t.y0 + t.height_px <= h
        covered[t.y0 : t.y0 + t.height_px, t.x0 : t.x0 + t.width_px] += 1
        x0, y0, x1, y1 = t.own_xyxy
        assert t.x0 <= x0 < x1 <= t.x0 + t.width_px
        assert t.y0 <= y0 < y1 <= t.y0 + t.height_px
        owned[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    assert (owned == 1).all()


def test_full_frame_is_padded_to_the_size_multiple() -> None:
    g = _geometry(250, 130)
    template = np.full((130, 250), 7, np.uint8)
    builder = InputBuilder(g, template)
    frame = np.full((130, 250), 9, np.uint8)
    ((batch, tiles),) = builder.batches(frame)
    assert batch.shape == (1, 2, 144, 256)
    assert batch.dtype == np.uint8
    assert (batch[0, 0, :130, :250] == 9).all()
    assert (batch[0, 1, :130, :250] == 7).all()
    # The padding repeats the frame's last row and column (what the device warp samples there).
    assert (batch[0, 0, 130:, :] == 9).all() and (batch[0, 1, :, 250:] == 7).all()
    assert len(tiles) == 1
    ramp = np.tile(np.arange(250, dtype=np.uint8), (130, 1))
    ramp[-1] = 200  # a last row unlike the others
    ((batch, _),) = builder.batches(ramp)
    assert (batch[0, 0, 130:, :250] == 200).all()  # rows below repeat the last row
    assert (batch[0, 0, :129, 250:] == 249).all()  # columns to the right repeat the last column


def test_tiles_are_batched_up_to_the_profile_max() -> None:
    g = _geometry(1000, 300, "tiles", 256, batch=4)
    builder = InputBuilder(g, np.zeros((300, 1000), np.uint8))
    batches = builder.batches(np.zeros((300, 1000), np.uint8))
    assert [b.shape[0] for b, _ in batches] == [4, 4, 2]
    assert sum(len(t) for _, t in batches) == 10


def test_per_frame_template_replaces_the_golden_one_for_that_frame_only() -> None:
    g = _geometry(64, 64)
    builder = InputBuilder(g, np.full((64, 64), 1, np.uint8))
    ((b, _),) = builder.batches(np.zeros((64, 64), np.uint8), np.full((64, 64), 2, np.uint8))
    assert (b[0, 1] == 2).all()
    ((b, _),) = builder.batches(np.zeros((64, 64), np.uint8))
    assert (b[0, 1] == 1).all()


def test_wrong_frame_size_is_a_frame_error() -> None:
    builder = InputBuilder(_geometry(64, 64), np.zeros((64, 64), np.uint8))
    with pytest.raises(
        FrameError, match="frame must be 64x64 px as the recipe's geometry says, got 80x64"
    ):
        builder.batches(np.zeros((64, 80), np.uint8))


@pytest.mark.parametrize(
    ("image", "depth", "expected"),
    [
        (np.full((4, 4), 200, np.uint8), 0, 200),
        (np.full((4, 4), 4095, np.uint16), 12, 255),
        (np.full((4, 4), 1024, np.uint16), 12, 64),
        (np.full((4, 4), 65535, np.uint16), 0, 255),
        (np.dstack([np.full((4, 4), v, np.uint8) for v in (0, 255, 0)]), 0, 150),
    ],
)
def test_to_mono8(image: np.ndarray, depth: int, expected: int) -> None:
    out = to_mono8(image, depth)
    assert out.dtype == np.uint8 and out.shape == (4, 4)
    assert int(out[0, 0]) == expected
