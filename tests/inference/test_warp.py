"""The device warp (aoi/inference/warp.py): the graph registers channel 0 as cv2.warpAffine does,
to a grey level, and the cycle with it finds the same defects as with the CPU warp."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from aoi.errors import InferenceError
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.warp import AFFINE_NAME, affine_feed, device_affine, warp_model
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import load_recipe
from aoi.sources.synthetic import SyntheticSource
from aoi.types import InspectionResult

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "board-a-640.toml"
BOARDS = 30


def _registering_session() -> ort.InferenceSession:
    model = warp_model(onnx.load(str(load_recipe(RECIPE).model_path)))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("boards_registered", onnx.TensorProto.UINT8, None)
    )
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _registered(session: ort.InferenceSession, batch: np.ndarray, affine: np.ndarray | None):
    feeds = {"boards": batch, AFFINE_NAME: affine_feed(affine, batch.shape)}
    return session.run(["boards_registered"], feeds)[0]


def test_identity_reproduces_the_batch_and_a_shift_moves_it() -> None:
    session = _registering_session()
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, (2, 2, 96, 128), dtype=np.uint8)
    np.testing.assert_array_equal(_registered(session, batch, None), batch)
    # Template pixel (x, y) reads frame pixel (x + 3, y + 2): a pure integer shift.
    shift = np.array([[1, 0, 3], [0, 1, 2]], np.float32)
    out = _registered(session, batch, device_affine(shift, 96, 128)[None])
    np.testing.assert_array_equal(out[0, 0, :-2, :-3], batch[0, 0, 2:, 3:])
    np.testing.assert_array_equal(out[0, 1], batch[0, 1])  # the template is not warped
    np.testing.assert_array_equal(out[1], batch[1])  # padding boards get the identity


def test_affine_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(InferenceError, match="affine"):
        affine_feed(np.zeros((3, 2, 3), np.float32), (2, 2, 8, 8))


@pytest.mark.slow
def test_graph_warp_matches_cv2_on_registered_boards() -> None:
    session = _registering_session()
    loaded = load_recipe(RECIPE)
    with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile, threads=1) as be:
        pipeline = Pipeline(loaded, be)
    moved = 0
    with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=5) as source:
        for _ in range(10):
            image = source.grab().image
            reg = pipeline.registrar.register(image)
            moved += abs(reg.shift_x_px) > 0.5 or abs(reg.rotation_deg) > 0.1
            cpu = cv2.warpAffine(
                image, reg.transform, image.shape[::-1],
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
            )  # fmt: skip
            batch = np.stack([image, pipeline.template])[None]
            dev = _registered(session, batch, device_affine(reg.transform, *image.shape)[None])
            # Bilinear in float against OpenCV's 1/32 px fixed point: one grey level at most.
            diff = np.abs(dev[0, 0].astype(np.int16) - cpu.astype(np.int16))
            assert diff.max() <= 1
            assert (diff > 0).mean() < 0.01
    assert moved >= 5  # the boards were really shifted and rotated


def _answers(warp: bool) -> list[InspectionResult]:
    loaded = load_recipe(RECIPE)
    got: list[InspectionResult] = []
    profile = loaded.recipe.geometry.profile
    with OnnxRuntimeBackend(loaded.model_path, profile, threads=1, warp=warp) as be:
        assert be.warps_on_device == warp
        pipeline = Pipeline(loaded, be)
        assert pipeline.device_warp == warp
        with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=5) as source:
            run_cycles(pipeline, source, cycles=BOARDS, on_result=got.append)
    return got


@pytest.mark.slow
def test_device_warp_finds_the_defects_the_cpu_warp_finds() -> None:
    cpu, dev = _answers(False), _answers(True)
    assert len(cpu) == len(dev) == BOARDS
    for a, b in zip(cpu, dev, strict=True):
        assert (a.frame_name, a.verdict, a.verdict_reason) == (
            b.frame_name,
            b.verdict,
            b.verdict_reason,
        )
        assert len(a.defects) == len(b.defects)
        np.testing.assert_array_equal(a.defects.class_ids, b.defects.class_ids)
        # One grey level of resampling may move a box edge by a cell (measured: 0 at 640).
        np.testing.assert_allclose(a.defects.bbox_xyxy_px, b.defects.bbox_xyxy_px, atol=2)
        np.testing.assert_allclose(a.defects.scores, b.defects.scores, atol=1e-3)
        assert b.registration is not None
        assert b.registration.residual == -1.0  # not measured without the frame on the CPU
    assert sum(len(r.defects) for r in cpu) > 5


def _padded_recipe(tmp_path: Path) -> Path:
    """board-a-640 cut to a 630x630 frame: one whole-frame input padded to 640x640."""
    import tomllib

    import tomli_w

    raw = tomllib.loads(RECIPE.read_text())
    template = cv2.imread(str(RECIPE.parent / raw["template"]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "t630.png"), template[:630, :630])
    raw["template"] = "t630.png"
    raw["name"] = "board-a-630"
    raw["camera"].update(roi_width_px=630, roi_height_px=630)
    raw["geometry"].update(frame_width_px=630, frame_height_px=630)
    raw["model"]["path"] = str((RECIPE.parent / raw["model"]["path"]).resolve())
    path = tmp_path / "board-a-630.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


@pytest.mark.slow
def test_a_padded_whole_frame_registers_on_the_device_like_on_the_cpu(tmp_path: Path) -> None:
    """The frame lies at the top left of a padded input: the device warp's coordinates refer to
    the padded input, and the defects match the CPU warp's."""
    loaded = load_recipe(_padded_recipe(tmp_path))
    profile = loaded.recipe.geometry.profile
    runs: dict[bool, list[InspectionResult]] = {False: [], True: []}
    for warp, got in runs.items():
        with OnnxRuntimeBackend(loaded.model_path, profile, threads=1, warp=warp) as be:
            pipeline = Pipeline(loaded, be)
            assert pipeline.inputs.input_hw == (640, 640)
            assert pipeline.device_warp == warp
            with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=5) as source:
                run_cycles(pipeline, source, cycles=12, on_result=got.append)
    for a, b in zip(runs[False], runs[True], strict=True):
        assert a.verdict == b.verdict
        np.testing.assert_array_equal(a.defects.class_ids, b.defects.class_ids)
        np.testing.assert_allclose(a.defects.bbox_xyxy_px, b.defects.bbox_xyxy_px, atol=2)
    assert sum(len(r.defects) for r in runs[False]) > 3


def test_a_padded_frame_moved_off_its_edge_warps_like_border_replicate(tmp_path: Path) -> None:
    """A board moved down and right makes the warp sample below and right of the frame: in a padded
    input that is the padding, which must read like cv2.BORDER_REPLICATE (zeros there made a
    false defect along the panel's bottom edge on the H200)."""
    loaded = load_recipe(_padded_recipe(tmp_path))
    session = _registering_session()
    with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile, threads=1) as be:
        pipeline = Pipeline(loaded, be)
    template = pipeline.template
    m = cv2.getRotationMatrix2D((315, 315), 0.6, 1.0)
    m[:, 2] += (4.0, 5.0)  # down and right: the template's bottom and right edges lie outside
    frame = cv2.warpAffine(template, m, (630, 630), borderMode=cv2.BORDER_REPLICATE)
    batch, _tiles = pipeline.inputs.batches(frame)[0]
    assert batch.shape == (1, 2, 640, 640)
    affine = device_affine(m, *pipeline.inputs.input_hw)[None]  # template px -> frame px
    dev = _registered(session, batch, affine)[0, 0, :630, :630]
    cpu = cv2.warpAffine(
        frame, m, (630, 630),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    diff = np.abs(dev.astype(np.int16) - cpu.astype(np.int16))
    assert diff[-8:, :].max() <= 1 and diff[:, -8:].max() <= 1  # the edges that left the frame
    assert diff.max() <= 1
