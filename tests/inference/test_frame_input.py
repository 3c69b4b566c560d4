"""The frame uploaded once (aoi/inference/frame_input.py): the frame-taking graph registers as the
batch graph does, the slot uploads the frame and the template only when it must, and the cycle
answers the same with frames as with batches.

The buffers here live on ONNX Runtime's CPU device: the same IO binding the CUDA path uses, so the
upload logic is exercised here; the CUDA timings are measured on the GPU machine
(docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_warp import _padded_recipe

from aoi.errors import FrameError
from aoi.inference.frame_input import FrameSlot, SharedFrame, fixed_frame_shape
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.reduce import reduced_model
from aoi.inference.warp import AFFINE_NAME, device_affine, warp_model
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import load_recipe
from aoi.sources.synthetic import SyntheticSource
from aoi.types import FrameBatch, InspectionResult
from aoi.vision.preprocess import InputBuilder

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "board-a-640.toml"
CPU = ["CPUExecutionProvider"]


def _session(frame: bool, registered: bool = True) -> ort.InferenceSession:
    model = warp_model(reduced_model(load_recipe(RECIPE).model_path), frame=frame)
    if registered:
        model.graph.output.append(
            onnx.helper.make_tensor_value_info("boards_registered", onnx.TensorProto.UINT8, None)
        )
    return ort.InferenceSession(model.SerializeToString(), providers=CPU)


def _board(h: int = 300, w: int = 310, size: int = 320) -> FrameBatch:
    """A cut of board-a's template as the reference and, as the frame, the same cut with a
    copper block painted on (a defect): the maps differ from those of the clean cut."""
    import cv2

    raw = cv2.imread(str(load_recipe(RECIPE).template_path), cv2.IMREAD_GRAYSCALE)
    frame = raw[100 : 100 + h, 100 : 100 + w].copy()
    reference = np.pad(frame, ((0, size - h), (0, size - w)), mode="edge")[None, None]
    frame[120:140, 150:170] = 255 - frame[120:140, 150:170]
    return FrameBatch(frame, reference, 1)


def test_the_frame_graph_registers_a_frame_as_the_batch_graph_registers_the_padded_one() -> None:
    boards, frames = _session(frame=False), _session(frame=True)
    fb = _board()
    h, w = fb.frame.shape
    size = fb.reference.shape[2:]
    # Identity: the padded frame (edges repeated) beside the reference, exactly.
    ident = device_affine(None, *size)[None]
    old = boards.run(["boards_registered"], {"boards": fb.stacked(), AFFINE_NAME: ident})[0]
    feeds = {"frame": fb.frame, "reference": fb.reference}
    new = frames.run(["boards_registered"], {**feeds, AFFINE_NAME: device_affine(None, h, w)[None]})
    np.testing.assert_array_equal(new[0], old)
    np.testing.assert_array_equal(new[0][0, 0, h:, :w], np.repeat(fb.frame[-1:], size[0] - h, 0))
    # A rotation and a shift that sample past the frame's bottom and right edges.
    turn = np.array([[np.cos(0.02), -np.sin(0.02), 4.6], [np.sin(0.02), np.cos(0.02), 3.2]])
    affine_old = device_affine(turn, *size)[None]
    old = boards.run(["boards_registered"], {"boards": fb.stacked(), AFFINE_NAME: affine_old})[0]
    new = frames.run(["boards_registered"], {**feeds, AFFINE_NAME: device_affine(turn, h, w)[None]})
    diff = np.abs(new[0].astype(np.int16) - old.astype(np.int16))
    assert diff.max() <= 1  # the coordinates are normalised to another size: rounding only
    assert (diff > 0).mean() < 0.002
    np.testing.assert_array_equal(new[0][0, 1], fb.reference[0, 0])  # the template is not moved


def test_a_frame_larger_than_its_reference_or_not_uint8_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than its reference"):
        FrameBatch(np.zeros((330, 310), np.uint8), np.zeros((1, 1, 320, 320), np.uint8), 0)
    with pytest.raises(ValueError, match="uint8"):
        FrameBatch(np.zeros((30, 30), np.float32), np.zeros((1, 1, 32, 32), np.uint8), 0)


def _slot(frame: SharedFrame, size: int = 320) -> FrameSlot:
    model = warp_model(reduced_model(load_recipe(RECIPE).model_path), frame=True)
    fixed = fixed_frame_shape(model, frame.shape, (size, size))
    session = ort.InferenceSession(fixed.SerializeToString(), providers=CPU)
    return FrameSlot(session, frame, (size, size), (1, size // 2, size // 2), np.dtype("float32"))


def _maps(fb: FrameBatch) -> tuple[np.ndarray, np.ndarray]:
    session = _session(frame=True, registered=False)
    h, w = fb.frame.shape
    feeds = {
        "frame": fb.frame,
        "reference": fb.reference,
        AFFINE_NAME: device_affine(None, h, w)[None],
    }
    cls, score = session.run(["cls", "score"], feeds)
    return cls, score


def test_a_held_frame_is_not_uploaded_again_and_a_used_one_is() -> None:
    fb = replace(_board(), registered=True)
    shared = SharedFrame(fb.frame.shape, "cpu")
    slot = _slot(shared)
    before = fb.frame.copy()
    with shared.lock:
        shared.upload(fb.frame)  # as registration does
    assert shared.holds(fb.frame) and not shared.holds(before)
    fb.frame[:] = fb.reference[0, 0, :300, :310]  # the camera reuses the buffer: a clean board
    with shared.lock:
        first = slot.run(fb, None)
    want = _maps(FrameBatch(before, fb.reference, 1))
    np.testing.assert_array_equal(first.classes, want[0])  # read from the device, not uploaded
    assert not shared.holds(fb.frame)  # used once: never again by identity
    with shared.lock:
        second = slot.run(fb, None)
    np.testing.assert_array_equal(second.classes, _maps(fb)[0])  # uploaded: the new pixels
    assert not np.array_equal(first.classes, second.classes)


def test_a_pair_is_uploaded_even_when_the_device_holds_its_array() -> None:
    """A DeepPCB pair's test image was not registered: the device's copy of the same array
    (from a registration that failed, say) is not trusted."""
    fb = _board()
    assert not fb.registered
    shared = SharedFrame(fb.frame.shape, "cpu")
    slot = _slot(shared)
    with shared.lock:
        shared.upload(fb.frame)
    fb.frame[:] = fb.reference[0, 0, :300, :310]  # new pixels in the very array
    with shared.lock:
        got = slot.run(fb, None)
    np.testing.assert_array_equal(got.classes, _maps(fb)[0])


def test_the_reference_is_uploaded_when_its_version_changes() -> None:
    fb = _board()
    shared = SharedFrame(fb.frame.shape, "cpu")
    slot = _slot(shared)
    with shared.lock:
        first = slot.run(fb, None)
    old = fb.reference.copy()
    fb.reference[0, 0, :300, :310] = fb.frame  # now the frame's twin: nothing differs
    with shared.lock:
        same = slot.run(FrameBatch(fb.frame, fb.reference, 1), None)  # same version: kept
        new = slot.run(FrameBatch(fb.frame, fb.reference, 2), None)
    np.testing.assert_array_equal(same.classes, first.classes)
    np.testing.assert_array_equal(first.classes, _maps(FrameBatch(fb.frame, old, 1))[0])
    np.testing.assert_array_equal(new.classes, _maps(fb)[0])
    assert not np.array_equal(new.classes, first.classes)


def test_the_builder_hands_over_the_frame_uncopied_and_counts_template_changes() -> None:
    loaded = load_recipe(RECIPE)
    g = loaded.recipe.geometry
    template = np.full((g.frame_height_px, g.frame_width_px), 40, np.uint8)
    builder = InputBuilder(g, template)
    frame = np.zeros_like(template)
    a = builder.frame_batch(frame)
    b = builder.frame_batch(frame)
    assert a.frame is frame and a.reference_version == b.reference_version
    assert a.registered and b.registered
    assert (a.reference == 40).all()
    pair = builder.frame_batch(frame, np.full_like(template, 7))  # a DeepPCB pair's own
    back = builder.frame_batch(frame)
    assert not pair.registered and back.registered
    assert a.reference_version < pair.reference_version < back.reference_version
    assert (back.reference == 40).all()


def test_a_tiled_recipe_hands_over_no_frames() -> None:
    loaded = load_recipe(ROOT / "recipes" / "panel-c-4096x3000.toml")
    g = loaded.recipe.geometry
    builder = InputBuilder(g, np.zeros((g.frame_height_px, g.frame_width_px), np.uint8))
    with pytest.raises(FrameError, match="tiled"):
        builder.frame_batch(np.zeros((g.frame_height_px, g.frame_width_px), np.uint8))


def _cycle(path: Path, frames: bool) -> list[InspectionResult]:
    loaded = load_recipe(path)
    got: list[InspectionResult] = []
    profile = loaded.recipe.geometry.profile
    with OnnxRuntimeBackend(
        loaded.model_path, profile, threads=1, warp=True, registration=True, frames=frames,
        reduce=True,
    ) as be:  # fmt: skip
        pipeline = Pipeline(loaded, be)
        assert pipeline.frame_input == frames
        with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=5) as source:
            run_cycles(pipeline, source, cycles=12, on_result=got.append)
    return got


@pytest.mark.slow
def test_the_cycle_with_frames_answers_like_the_cycle_with_batches(tmp_path: Path) -> None:
    """A padded whole frame (630 px into 640): the same verdicts and defects either way."""
    path = _padded_recipe(tmp_path)
    batches, frames = _cycle(path, False), _cycle(path, True)
    for a, b in zip(batches, frames, strict=True):
        assert (a.frame_name, a.verdict) == (b.frame_name, b.verdict)
        np.testing.assert_array_equal(a.defects.class_ids, b.defects.class_ids)
        np.testing.assert_allclose(a.defects.bbox_xyxy_px, b.defects.bbox_xyxy_px, atol=2)
        np.testing.assert_allclose(a.defects.scores, b.defects.scores, atol=2e-3)
    assert sum(len(r.defects) for r in batches) > 3
