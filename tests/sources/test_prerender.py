"""The pre-rendered synthetic source replays the boards the plain one renders, as new frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aoi.config import StationConfig
from aoi.errors import SourceError
from aoi.recipe import load_recipe
from aoi.recipe.template import load_template
from aoi.sources.factory import create_source
from aoi.sources.synthetic import PrerenderedSource, SyntheticSource

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "board-a-640.toml"


def _template():
    loaded = load_recipe(RECIPE)
    g = loaded.recipe.geometry
    return loaded, load_template(
        loaded.template_path, g.frame_width_px, g.frame_height_px, str(loaded.path)
    )


def test_replays_the_rendered_boards_in_turn_with_new_ids() -> None:
    loaded, template = _template()
    with SyntheticSource(template, loaded.recipe.synthetic, seed=7) as plain:
        want = [plain.grab() for _ in range(3)]
    with PrerenderedSource(SyntheticSource(template, loaded.recipe.synthetic, seed=7), 3) as src:
        got = [src.grab() for _ in range(7)]
    for i, frame in enumerate(got):
        assert frame.frame_id == i and frame.name == f"synthetic-{i:06d}"
        np.testing.assert_array_equal(frame.image, want[i % 3].image)
        assert frame.truth is not None and want[i % 3].truth is not None
        assert len(frame.truth) == len(want[i % 3].truth)
    assert got[4].available_ns > got[1].available_ns  # each grab is a frame available now


def test_factory_spec_and_errors() -> None:
    loaded, template = _template()
    made = create_source("synthetic?prerender=4", loaded, template, StationConfig())
    assert isinstance(made, PrerenderedSource) and made.count == 4
    assert isinstance(
        create_source("synthetic", loaded, template, StationConfig()), SyntheticSource
    )
    with pytest.raises(SourceError, match="prerender"):
        create_source("synthetic?prerender=x", loaded, template, StationConfig())
    with pytest.raises(SourceError, match="not open"):
        made.grab()


class _Recording:
    """Frame memory that records the arrays it hands out (the station's page-locked pool)."""

    name = "recording"

    def __init__(self) -> None:
        self.given: list[np.ndarray] = []

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        self.given.append(np.empty(shape, dtype))
        return self.given[-1]


def test_the_rendered_boards_live_in_the_station_frame_memory() -> None:
    loaded, template = _template()
    memory = _Recording()
    with SyntheticSource(template, loaded.recipe.synthetic, seed=7) as plain:
        want = [plain.grab() for _ in range(2)]
    inner = SyntheticSource(template, loaded.recipe.synthetic, seed=7)
    with PrerenderedSource(inner, 2, memory=memory) as src:
        got = [src.grab() for _ in range(4)]
    assert len(memory.given) == 2  # copied once each, when rendered
    for i, frame in enumerate(got):
        assert frame.image is memory.given[i % 2]
        np.testing.assert_array_equal(frame.image, want[i % 2].image)
