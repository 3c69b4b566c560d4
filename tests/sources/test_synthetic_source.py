"""Tests of the ``synthetic`` image source."""

from __future__ import annotations

import time

import numpy as np
import pytest

from aoi.errors import SourceError
from aoi.recipe import SyntheticSettings
from aoi.sources.base import ImageSource
from aoi.sources.synthetic import SyntheticSource, boardgen
from aoi.types import Frame


@pytest.fixture(scope="module")
def template() -> np.ndarray:
    return boardgen.golden_board(192, 256, 21, "grey")


def grab_all(source: SyntheticSource, n: int) -> list[Frame]:
    with source:
        return [source.grab() for _ in range(n)]


def test_is_an_image_source(template: np.ndarray) -> None:
    source = SyntheticSource(template, SyntheticSettings())
    assert isinstance(source, ImageSource)
    assert source.name == "synthetic"
    h, w = template.shape
    assert source.describe() == f"Simulated camera: synthetic boards of a {w}x{h} px template"
    named = SyntheticSource(template, SyntheticSettings(), board="board-a-640")
    assert named.describe() == "Simulated camera: synthetic board-a-640 boards"


@pytest.mark.parametrize("look", ["binary", "grey"])
def test_same_seed_same_stream(template: np.ndarray, look: str) -> None:
    settings = SyntheticSettings(look=look, defect_rate=0.7, seed=4)
    a = grab_all(SyntheticSource(template, settings), 4)
    b = grab_all(SyntheticSource(template, settings), 4)
    for fa, fb in zip(a, b, strict=True):
        assert np.array_equal(fa.image, fb.image)
        assert fa.truth is not None and fb.truth is not None
        assert np.array_equal(fa.truth.bbox_xyxy_px, fb.truth.bbox_xyxy_px)
        assert np.array_equal(fa.truth.class_ids, fb.truth.class_ids)


def test_seed_argument_overrides_settings(template: np.ndarray) -> None:
    settings = SyntheticSettings(seed=5)
    default = grab_all(SyntheticSource(template, settings), 2)
    same = grab_all(SyntheticSource(template, settings, seed=5), 2)
    other = grab_all(SyntheticSource(template, settings, seed=6), 2)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(default, same, strict=True))
    assert not np.array_equal(default[0].image, other[0].image)


@pytest.mark.parametrize(
    ("rate", "low", "high"), [(0.0, 0, 0), (1.0, 1, 1), (1.0, 2, 4), (1.0, 3, 3)]
)
def test_defect_rate_and_count(template: np.ndarray, rate: float, low: int, high: int) -> None:
    settings = SyntheticSettings(defect_rate=rate, defects_min=max(low, 1),
                                 defects_max=max(high, 1))
    for frame in grab_all(SyntheticSource(template, settings), 5):
        assert frame.truth is not None
        assert low <= frame.truth.class_ids.size <= high
        assert frame.truth.is_defective == (rate > 0)


def test_frames_are_numbered_and_stamped(template: np.ndarray) -> None:
    source = SyntheticSource(template, SyntheticSettings(defect_rate=0.5))
    with source:
        before = time.perf_counter_ns()
        frames = [source.grab() for _ in range(3)]
    assert [f.frame_id for f in frames] == [0, 1, 2]
    assert [f.name for f in frames] == ["synthetic-000000", "synthetic-000001", "synthetic-000002"]
    stamps = [f.available_ns for f in frames]
    assert before < stamps[0] < stamps[1] < stamps[2] <= time.perf_counter_ns()
    for f in frames:
        assert isinstance(f, Frame)
        assert f.source == "synthetic"
        assert f.image.dtype == np.uint8
        assert f.image.shape == template.shape
        assert f.template is None


def test_grab_outside_the_context_raises(template: np.ndarray) -> None:
    source = SyntheticSource(template, SyntheticSettings())
    with pytest.raises(SourceError, match="not open"):
        source.grab()
    with source:
        source.grab()
    with pytest.raises(SourceError, match="not open"):
        source.grab()


@pytest.mark.parametrize(
    "bad", [np.zeros((8, 64), np.uint8), np.zeros((64, 64), np.float32),
            np.zeros((64, 64, 3), np.uint8)]
)
def test_bad_template_raises(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="template"):
        SyntheticSource(bad, SyntheticSettings())
