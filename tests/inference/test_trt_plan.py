"""TensorRT planning without TensorRT: profiles from recipes, batch shapes, buffers, precisions.

Everything here is the pure logic the TensorRT backend asks before it calls TensorRT; none of it
needs TensorRT or a GPU.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import pytest

from aoi.errors import InferenceError, ModelError, RecipeError
from aoi.inference.tensorrt.plan import (
    BufferPlan,
    ProfileShapes,
    calibration_shape,
    cycle_batch_sizes,
    cycle_shapes,
    output_shape,
    plan_station_buffers,
    precision_plan,
    profile_for,
    stride_of,
)
from aoi.recipe import Recipe, load_recipe, recipes_dir

SHIPPED = sorted(recipes_dir().glob("*.toml"))


def _recipe(name: str) -> Recipe:
    return load_recipe(recipes_dir() / f"{name}.toml", check_files=False).recipe


def test_every_shipped_recipe_is_covered() -> None:
    assert {p.stem for p in SHIPPED} == {
        "board-a-640",
        "board-b-1024",
        "deeppcb-640",
        "deeppcb-640-ms",
        "panel-c-4096x3000",
    }


@pytest.mark.parametrize(
    ("name", "profile", "shapes", "calib"),
    [
        (
            "board-a-640",
            ((1, 2, 512, 512), (1, 2, 640, 640), (1, 2, 768, 768)),
            [(1, 2, 640, 640)],
            (1, 2, 640, 640),
        ),
        (
            "deeppcb-640",
            ((1, 2, 512, 512), (1, 2, 640, 640), (1, 2, 768, 768)),
            [(1, 2, 640, 640)],
            (1, 2, 640, 640),
        ),
        (
            "deeppcb-640-ms",  # read at scales 1, 1.25 and 1.5
            ((1, 2, 512, 512), (1, 2, 640, 640), (1, 2, 960, 960)),
            [(1, 2, 640, 640), (1, 2, 800, 800), (1, 2, 960, 960)],
            (1, 2, 640, 640),
        ),
        (
            "board-b-1024",
            ((1, 2, 768, 768), (1, 2, 1024, 1024), (1, 2, 1280, 1280)),
            [(1, 2, 1024, 1024)],
            (1, 2, 1024, 1024),
        ),
        (
            "panel-c-4096x3000",
            ((1, 2, 1024, 1024), (8, 2, 1024, 1024), (8, 2, 1024, 1024)),
            [(8, 2, 1024, 1024), (7, 2, 1024, 1024)],
            (8, 2, 1024, 1024),
        ),
    ],
)
def test_profiles_from_shipped_recipes(
    name: str,
    profile: tuple[tuple[int, ...], ...],
    shapes: list[tuple[int, ...]],
    calib: tuple[int, ...],
) -> None:
    recipe = _recipe(name)
    found, warnings = profile_for(recipe, f"recipes/{name}.toml")
    assert (found.min, found.opt, found.max) == profile
    assert warnings == []
    assert cycle_shapes(recipe.geometry, recipe.model.scales) == shapes
    assert calibration_shape(recipe.geometry) == calib
    assert all(found.contains(s) for s in shapes)


def test_panel_feeds_fifteen_tiles_as_eight_and_seven() -> None:
    g = _recipe("panel-c-4096x3000").geometry
    assert g.tile_count() == 15
    assert cycle_batch_sizes(g) == [8, 7]


def _with_profile(name: str, **corners: dict[str, int]) -> Recipe:
    recipe = _recipe(name)
    raw = recipe.model_dump(mode="json")
    for corner, values in corners.items():
        raw["geometry"]["profile"][corner].update(values)
    return Recipe.model_validate(raw)


@pytest.mark.parametrize(
    ("name", "corners", "expectation", "warning"),
    [
        ("board-a-640", {}, nullcontext(), None),
        (
            "board-a-640",
            {"min": {"height_px": 520}},
            pytest.raises(
                RecipeError,
                match=r"x\.toml: geometry\.profile\.min\.height_px must be a multiple of "
                r"geometry\.size_multiple_px \(16, .*\), got 520",
            ),
            None,
        ),
        (
            # A last batch of 7 tiles must not fall below the profile's min batch.
            "panel-c-4096x3000",
            {"min": {"batch": 8}},
            pytest.raises(
                RecipeError,
                match=r"x\.toml: geometry\.profile: the cycle feeds the network \[7, 2, 1024, "
                r"1024\] .* must lie within min \[8, 2, 1024, 1024\]",
            ),
            None,
        ),
        (
            "board-b-1024",
            {"opt": {"height_px": 1280, "width_px": 1280}},
            nullcontext(),
            "geometry.profile.opt is [1, 2, 1280, 1280] but the cycle mostly runs "
            "[1, 2, 1024, 1024]",
        ),
    ],
)
def test_profile_validation_names_file_field_expected_and_found(
    name: str,
    corners: dict[str, dict[str, int]],
    expectation: AbstractContextManager[object],
    warning: str | None,
) -> None:
    recipe = _with_profile(name, **corners)
    with expectation:
        _profile, warnings = profile_for(recipe, "x.toml")
        assert (warning is None) == (not warnings)
        if warning:
            assert warning in warnings[0]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_buffer_plan_for_each_shipped_recipe_max_shape(path: Path) -> None:
    recipe = load_recipe(path, check_files=False).recipe
    shapes = ProfileShapes.from_profile(recipe.geometry.profile)
    stride = 2  # the shipped model's output stride (models/net.py)
    inp, out = plan_station_buffers(shapes, "boards", "probs", stride)
    n, c, h, w = shapes.max
    assert (inp.name, inp.is_input, inp.dtype) == ("boards", True, np.dtype(np.uint8))
    assert inp.nbytes == n * c * h * w
    assert out.max_shape == (n, 7, h // stride, w // stride)
    assert out.nbytes == math.prod(out.max_shape) * 4
    # Every shape the cycle runs fits the buffers planned for the max.
    for shape in cycle_shapes(recipe.geometry):
        assert inp.check_fits(shape) == math.prod(shape)
        assert out.check_fits(output_shape(shape, stride=stride)) <= out.nbytes


def test_panel_buffers_in_bytes() -> None:
    shapes = ProfileShapes.from_profile(_recipe("panel-c-4096x3000").geometry.profile)
    inp, out = plan_station_buffers(shapes, "boards", "probs", stride=2)
    assert inp.nbytes == 8 * 2 * 1024 * 1024  # 16 MiB of uint8
    assert out.nbytes == 8 * 7 * 512 * 512 * 4  # 56 MiB of float32


def test_a_shape_beyond_the_plan_is_refused() -> None:
    plan = BufferPlan("probs", False, np.dtype(np.float32), (1, 7, 320, 320))
    with pytest.raises(InferenceError, match=r"tensor 'probs' of shape \[1, 7, 384, 384\] needs"):
        plan.check_fits((1, 7, 384, 384))
    with pytest.raises(InferenceError, match="unresolved dimensions"):
        plan.check_fits((1, 7, -1, 320))


@pytest.mark.parametrize(
    ("inp", "out", "expected"),
    [
        ((1, 2, 640, 640), (1, 7, 320, 320), 2),
        ((8, 2, 1024, 1024), (8, 7, 256, 256), 4),
        ((1, 2, 640, 640), (1, 7, 320, 160), ModelError),  # two strides
        ((1, 2, 640, 640), (1, 7, 300, 300), ModelError),  # not integer
        ((1, 2, 640, 640), (1, 6, 320, 320), ModelError),  # classes
        ((2, 2, 640, 640), (1, 7, 320, 320), ModelError),  # batch
    ],
)
def test_stride_from_input_and_output_shapes(
    inp: tuple[int, ...], out: tuple[int, ...], expected: int | type[Exception]
) -> None:
    if isinstance(expected, int):
        assert stride_of(inp, out, "m.engine") == expected
        assert output_shape(inp, stride=expected) == out
    else:
        with pytest.raises(expected, match=r"m\.engine: output"):
            stride_of(inp, out, "m.engine")


@pytest.mark.parametrize(
    ("precision", "version", "flags", "expectation"),
    [
        ("fp32", "10.16.1", ((), ("TF32",), False), nullcontext()),
        ("fp16", "10.3.0", (("FP16",), (), False), nullcontext()),
        ("int8", "10.16.1", (("FP16", "INT8"), (), True), nullcontext()),
        ("fp32", "11.4.0", ((), ("TF32",), False), nullcontext()),
        (
            "fp16",
            "11.4.0",
            None,
            pytest.raises(ModelError, match=r"r\.toml: model\.precision fp16 needs TensorRT 10"),
        ),
        ("int8", "11.0.1", None, pytest.raises(ModelError, match=r"install tensorrt>=10,<11")),
        ("fp16", "8.6.1", None, pytest.raises(ModelError, match=r"10 or newer.*found 8\.6\.1")),
        ("bf16", "10.16.1", None, pytest.raises(RecipeError, match=r"got 'bf16'")),
        ("fp16", "x10", None, pytest.raises(ModelError, match=r"must look like 10\.x\.y")),
    ],
)
def test_precision_flags_per_tensorrt_major(
    precision: str,
    version: str,
    flags: tuple[tuple[str, ...], tuple[str, ...], bool] | None,
    expectation: AbstractContextManager[object],
) -> None:
    with expectation:
        plan = precision_plan(precision, version, "r.toml")
        assert (plan.set_flags, plan.clear_flags, plan.calibrate) == flags
