"""The output reduced on load (class + score per cell) gives the defects of the full maps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from aoi.app.evaluation import SplitEntry, curve_recipe, read_split
from aoi.errors import ModelError
from aoi.inference.base import CLASS_NAME, OUTPUT_NAME, SCORE_NAME
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.reduce import reduce_model
from aoi.pipeline import Pipeline
from aoi.recipe import LoadedRecipe, load_recipe
from aoi.sources.replay import read_image
from aoi.sources.synthetic.source import SyntheticSource
from aoi.types import ClassMaps, Defects, Frame, InspectionResult

REPO = Path(__file__).resolve().parents[2]
VAL_LIST = REPO / "models" / "splits" / "deeppcb-val.txt"


def _same(a: Defects, b: Defects) -> None:
    np.testing.assert_array_equal(a.bbox_xyxy_px, b.bbox_xyxy_px)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.areas_px, b.areas_px)


def _inspect_both(
    loaded: LoadedRecipe, frames: list[Frame]
) -> Iterator[tuple[InspectionResult, InspectionResult]]:
    profile = loaded.recipe.geometry.profile
    with (
        OnnxRuntimeBackend(loaded.model_path, profile, threads=1) as full,
        OnnxRuntimeBackend(loaded.model_path, profile, threads=1, reduce=True) as reduced,
    ):
        a, b = Pipeline(loaded, full), Pipeline(loaded, reduced)
        for frame in frames:
            yield a.inspect(frame), b.inspect(frame)


def _first_readings(loaded: LoadedRecipe) -> LoadedRecipe:
    """The recipe without alternates: those need the full maps, and reduced maps give none
    (tests/vision/test_alternates.py); every first reading must be identical."""
    r = loaded.recipe
    model = r.model.model_copy(update={"alternates": False})
    return LoadedRecipe(r.model_copy(update={"model": model}), loaded.path, loaded.content_hash)


def _compare(loaded: LoadedRecipe, frames: list[Frame]) -> int:
    """Asserts identical results; returns how many candidates were compared."""
    compared = 0
    for x, y in _inspect_both(_first_readings(curve_recipe(loaded)), frames):
        assert (x.verdict, x.error) == (y.verdict, y.error)
        _same(x.defects, y.defects)
        _same(x.review_defects, y.review_defects)
        compared += len(x.defects) + len(x.review_defects)
    return compared


@pytest.mark.parametrize("recipe", ["board-a-640", "board-b-1024"])
def test_synthetic_boards_give_identical_defects(recipe: str) -> None:
    loaded = load_recipe(REPO / "recipes" / f"{recipe}.toml")
    template = read_image(loaded.template_path)
    settings = loaded.recipe.synthetic.model_copy(update={"defect_rate": 1.0})
    with SyntheticSource(template, settings, seed=3) as source:
        frames = [source.grab() for _ in range(4)]
    # The review band is widened down to 0.05 (as `aoi eval` does): many weak candidates.
    assert _compare(loaded, frames) >= 4


def _val_entries(deeppcb: Path, n: int) -> list[SplitEntry]:
    entries = read_split(deeppcb / "PCBData", VAL_LIST)
    # Spread over the split's groups rather than the first group's boards.
    return [entries[i] for i in np.linspace(0, len(entries) - 1, n).astype(int)]


def test_deeppcb_val_pairs_give_identical_defects(deeppcb_dir: Path) -> None:
    loaded = load_recipe(REPO / "recipes" / "deeppcb-640.toml")
    frames = [
        Frame(
            read_image(e.test),
            i,
            time.perf_counter_ns(),
            "test",
            e.test.stem,
            template=read_image(e.template),
        )
        for i, e in enumerate(_val_entries(deeppcb_dir, 12))
    ]
    assert _compare(loaded, frames) >= 12


def test_reduced_outputs_are_the_argmax_and_its_probability() -> None:
    loaded = load_recipe(REPO / "recipes" / "deeppcb-640.toml")
    profile = loaded.recipe.geometry.profile
    rng = np.random.default_rng(5)
    shape = profile.opt.as_tuple()
    boards = rng.integers(0, 256, shape, dtype=np.uint8)
    with OnnxRuntimeBackend(loaded.model_path, profile, threads=1) as full:
        probs = full.predict(boards)
    for dtype in ("float32", "float16"):
        with OnnxRuntimeBackend(
            loaded.model_path, profile, threads=1, reduce=True, score_dtype=dtype
        ) as reduced:
            maps = reduced.predict(boards)
        assert isinstance(maps, ClassMaps) and isinstance(probs, np.ndarray)
        assert maps.classes.dtype == np.uint8 and maps.scores.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(maps.classes, probs.argmax(axis=1))
        np.testing.assert_array_equal(maps.scores, probs.max(axis=1).astype(dtype))


def test_cuda_reduces_by_default_and_the_cpu_does_not() -> None:
    loaded = load_recipe(REPO / "recipes" / "deeppcb-640.toml")
    profile = loaded.recipe.geometry.profile
    assert OnnxRuntimeBackend(loaded.model_path, profile, device="cuda").reduce
    assert not OnnxRuntimeBackend(loaded.model_path, profile).reduce


def test_a_model_without_the_probs_output_cannot_be_reduced() -> None:
    model = onnx.load(str(REPO / "models" / "aoi-defect-v3.onnx"))
    reduced = reduce_model(model)
    assert [o.name for o in reduced.graph.output] == [CLASS_NAME, SCORE_NAME]
    with pytest.raises(ModelError, match=f"must have an output '{OUTPUT_NAME}' to reduce"):
        reduce_model(reduced)
