"""Shared fixtures: a tiny real ONNX model with known behaviour, recipes written to disk, and a
guard that fails any test leaving a thread behind."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO / "models" / "aoi-defect-v1.onnx"
#: The project's shared data folder sits beside the checkout (``../shared``), never at a
#: machine's absolute path; a fresh clone elsewhere skips what needs it.
DEEPPCB_ROOT = REPO.parent / "shared" / "data" / "deeppcb"


@pytest.fixture
def deeppcb_dir() -> Path:
    """DeepPCB's root (``PCBData/group*/...`` under it), or skip the test where it is absent."""
    if not (DEEPPCB_ROOT / "PCBData").is_dir():
        pytest.skip("DeepPCB trainval data not found at ../shared/data/deeppcb beside the checkout")
    return DEEPPCB_ROOT


@pytest.fixture(autouse=True)
def _station_data_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`aoi run` keeps its defect log in the user's data folder, and looks recipes up in the
    site's folder first (/etc/aoi/recipes): never the real ones in tests."""
    monkeypatch.setenv("AOI_DATA_DIR", str(tmp_path / "aoi-data"))
    monkeypatch.setenv("AOI_RECIPES_DIR", str(tmp_path / "site-recipes"))


@pytest.fixture(autouse=True)
def _no_thread_left_behind() -> Iterator[None]:
    """Fail a test that leaves a Python thread running (napari does the same for QThreads)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10.0  # a grace period, not a limit: done threads end sooner
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not extra, f"test left threads running: {[t.name for t in extra]}"


def build_difference_model(path: Path, stride: int = 4, defect_class: int = 5) -> Path:
    """A real ONNX model honouring the station's contract, whose answer is known in advance.

    It averages |test - template| / 255 over stride x stride cells and reports that as the
    probability of ``defect_class`` (background gets the rest). Tests of the cycle use it so
    that they check the station's plumbing, not what a trained network happened to learn.
    """
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["boards"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Split", ["f", "split"], ["test", "tpl"], axis=1),
        helper.make_node("Sub", ["test", "tpl"], ["diff"]),
        helper.make_node("Abs", ["diff"], ["adiff"]),
        helper.make_node("Div", ["adiff", "c255"], ["norm"]),
        helper.make_node(
            "AveragePool", ["norm"], ["d"], kernel_shape=[stride, stride], strides=[stride, stride]
        ),
        helper.make_node("Sub", ["one", "d"], ["bg"]),
        helper.make_node("Mul", ["d", "zero"], ["z"]),
    ]
    parts = ["bg"] + ["z"] * 6
    parts[defect_class] = "d"
    nodes.append(helper.make_node("Concat", parts, ["probs"], axis=1))
    inits = [
        helper.make_tensor("split", TensorProto.INT64, [2], [1, 1]),
        helper.make_tensor("c255", TensorProto.FLOAT, [], [255.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    graph = helper.make_graph(
        nodes,
        "difference",
        [helper.make_tensor_value_info("boards", TensorProto.UINT8, ["N", 2, "H", "W"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 7, "h", "w"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def difference_model(tmp_path: Path) -> Path:
    return build_difference_model(tmp_path / "difference.onnx")


@pytest.fixture
def build_model() -> Callable[..., Path]:
    """:func:`build_difference_model`, for tests that need another model (class, stride)."""
    return build_difference_model


RECIPE_TEMPLATE = """\
schema_version = 1
name = "{name}"
product_code = 7
template = "{template}"
cycle_budget_ms = 50.0

[registration]
method = "{registration}"{edge_margin}

[geometry]
frame_width_px = {width}
frame_height_px = {height}
mode = "{mode}"
{tiles}
profile.min = {{ batch = 1, height_px = {pmin_h}, width_px = {pmin_w} }}
profile.opt = {{ batch = {batch}, height_px = {in_h}, width_px = {in_w} }}
profile.max = {{ batch = {batch}, height_px = {in_h}, width_px = {in_w} }}

[model]
path = "{model}"

[classes]
spurious_copper = {{ score = 0.5, review_score = 0.3, min_area_px = 16 }}

[synthetic]
look = "binary"
seed = 3
defect_rate = 0.5
defects_min = 1
defects_max = 3
max_shift_px = 2.0
max_rotation_deg = 0.5
noise_sigma = 3.0
"""

RecipeFactory = Callable[..., Path]


@pytest.fixture
def make_recipe(tmp_path: Path, difference_model: Path) -> RecipeFactory:
    """Write a recipe (and a synthetic golden template) into tmp_path; returns the recipe path."""
    import cv2

    from aoi.sources.synthetic.boardgen import golden_board

    def _make(
        name: str = "test-board",
        width: int = 256,
        height: int = 256,
        mode: str = "full",
        tile: int = 128,
        registration: str = "patches",
        model: Path | None = None,
        template: np.ndarray | None = None,
        extra: str = "",
        edge_margin: int | None = None,
    ) -> Path:
        if template is None:
            template = golden_board(height, width, 11, "binary")
        tpl_path = tmp_path / f"{name}.png"
        cv2.imwrite(str(tpl_path), template)
        if mode == "tiles":
            tiles = f"tile_width_px = {tile}\ntile_height_px = {tile}\ntile_overlap_px = 16"
            in_h = in_w = tile
            batch = 4
        else:
            tiles = ""
            in_h, in_w = -(-height // 16) * 16, -(-width // 16) * 16
            batch = 1
        text = RECIPE_TEMPLATE.format(
            name=name,
            template=tpl_path.name,
            width=width,
            height=height,
            mode=mode,
            tiles=tiles,
            in_h=in_h,
            in_w=in_w,
            pmin_h=min(in_h, 64),
            pmin_w=min(in_w, 64),
            batch=batch,
            registration=registration,
            edge_margin="" if edge_margin is None else f"\nedge_margin_px = {edge_margin}",
            model=(model or difference_model).as_posix(),
        )
        path = tmp_path / f"{name}.toml"
        path.write_text(text + extra, encoding="utf-8")
        return path

    return _make
