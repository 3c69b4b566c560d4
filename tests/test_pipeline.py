"""The cycle end to end on real parts: synthetic source, ONNX Runtime, registration, verdicts.

The network here is the difference model from conftest (a real ONNX graph whose answers are
known), so these tests check the station's plumbing; the trained model has its own tests.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np
import pytest

from aoi.errors import CameraTimeout, InferenceError, ModelError, SourceError
from aoi.events import EventBus
from aoi.inference import create_backend
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import load_recipe
from aoi.sources.synthetic import SyntheticSource
from aoi.types import (
    STAGES,
    Defects,
    ErrorKind,
    Frame,
    GroundTruth,
    InspectionResult,
    Trigger,
    Verdict,
)

RecipeFactory = Callable[..., Path]
Opener = Callable[[Path], Pipeline]


def _frame(image: np.ndarray, i: int = 0, truth: GroundTruth | None = None) -> Frame:
    return Frame(image, i, time.perf_counter_ns(), "test", f"f{i}", truth=truth)


@pytest.fixture
def open_pipeline() -> Iterator[Callable[[Path], Pipeline]]:
    """Opens pipelines on real ONNX Runtime sessions and closes them after the test."""
    with ExitStack() as stack:

        def _open(recipe_path: Path) -> Pipeline:
            loaded = load_recipe(recipe_path)
            profile = loaded.recipe.geometry.profile
            backend = stack.enter_context(OnnxRuntimeBackend(loaded.model_path, profile, threads=1))
            return Pipeline(loaded, backend)

        yield _open


def test_clean_board_is_ok_and_spurious_copper_is_ng(
    make_recipe: RecipeFactory, open_pipeline: Opener
) -> None:
    pipeline = open_pipeline(make_recipe())
    clean = pipeline.inspect(_frame(pipeline.template.copy()))
    assert clean.verdict is Verdict.OK, clean.error
    assert (clean.verdict_reason, clean.error_kind, clean.error) == (
        "no defect",
        ErrorKind.NONE,
        "",
    )
    assert set(clean.stages_ms) == set(STAGES)
    assert clean.cycle_ms >= sum(clean.stages_ms.values()) - 0.5
    assert clean.recipe_hash == pipeline.loaded.content_hash
    assert len(clean.model_hash) == 64

    dirty = pipeline.template.copy()
    blob = 255 - dirty[100:112, 60:72]
    dirty[100:112, 60:72] = blob
    result = pipeline.inspect(_frame(dirty, 1))
    assert result.verdict is Verdict.NG
    # The verdict rules' reason travels with the result (the NG rule, naming the worst defect).
    n = len(result.defects)
    assert re.fullmatch(rf"{n} defect\(s\), worst spurious_copper 0\.\d\d", result.verdict_reason)
    top = result.top_defect
    assert top is not None and top.class_name == "spurious_copper"
    x0, y0, x1, y1 = top.bbox_xyxy_px
    assert x0 <= 64 and x1 >= 68 and y0 <= 104 and y1 >= 108, top.bbox_xyxy_px
    assert result.inspection_id == clean.inspection_id + 1


def test_shifted_and_rotated_board_is_registered_before_inspection(
    make_recipe: RecipeFactory, open_pipeline: Opener
) -> None:
    pipeline = open_pipeline(make_recipe())
    t = pipeline.template
    m = cv2.getRotationMatrix2D((127.5, 127.5), 0.7, 1.0)
    m[:, 2] += (2.5, -1.5)
    moved = cv2.warpAffine(t, m, (256, 256), borderMode=cv2.BORDER_REPLICATE)
    unregistered = np.abs(moved.astype(int) - t.astype(int)).mean()
    result = pipeline.inspect(_frame(moved))
    assert result.registration is not None
    assert result.registration.shift_x_px == pytest.approx(2.5, abs=0.15)
    assert result.registration.rotation_deg == pytest.approx(0.7, abs=0.05)
    assert result.registration.residual < unregistered / 3
    assert result.verdict is Verdict.OK, [d.bbox_xyxy_px for d in result.defects]


@pytest.mark.parametrize(
    ("image", "expected", "kind"),
    [
        (
            np.zeros((200, 256), np.uint8),
            "frame must be 256x256 px as the recipe's geometry says",
            ErrorKind.BAD_FRAME,
        ),
        (np.full((256, 256), 127, np.uint8), "registration", ErrorKind.REGISTRATION),
    ],
)
def test_bad_frames_give_error_verdicts(
    make_recipe: RecipeFactory,
    open_pipeline: Opener,
    image: np.ndarray,
    expected: str,
    kind: ErrorKind,
) -> None:
    pipeline = open_pipeline(make_recipe())
    result = pipeline.inspect(_frame(image))
    assert result.verdict is Verdict.ERROR
    assert expected in result.error
    assert result.error_kind is kind
    assert result.verdict_reason == ""  # no verdict rule decided an ERROR
    assert len(result.defects) == 0


def test_a_failing_engine_gives_an_inference_error(make_recipe: RecipeFactory) -> None:
    loaded = load_recipe(make_recipe())
    backend = OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile, threads=1)
    with backend:
        pipeline = Pipeline(loaded, backend)
    # The session is closed now: the engine refuses to run, as a lost GPU would.
    result = pipeline.inspect(_frame(pipeline.template.copy()))
    assert (result.verdict, result.error_kind) == (Verdict.ERROR, ErrorKind.INFERENCE)
    assert "outside its context manager" in result.error
    assert set(result.stages_ms) == {"acquire", "register", "preprocess"}


def test_results_refuse_an_error_kind_that_contradicts_the_verdict() -> None:
    from dataclasses import replace

    no = Defects.empty()
    ok = InspectionResult(1, 0, "f", "r", "h", "m", "cpu", Verdict.OK, no, no, {}, 5.0, False, None)
    with pytest.raises(ValueError, match="must have error_kind NONE, got BAD_FRAME"):
        replace(ok, verdict=Verdict.OK, error_kind=ErrorKind.BAD_FRAME)
    with pytest.raises(ValueError, match=r"must say which failure in \.error_kind"):
        replace(ok, verdict=Verdict.ERROR, error="lost", error_kind=ErrorKind.NONE)
    with pytest.raises(ValueError, match=r"and why in \.error"):
        replace(ok, verdict=Verdict.ERROR, error="", error_kind=ErrorKind.OTHER)
    with pytest.raises(TypeError, match="must be an ErrorKind"):
        replace(ok, verdict=Verdict.ERROR, error="lost", error_kind="other")


def test_unrelated_board_is_an_error_not_ok(
    make_recipe: RecipeFactory, open_pipeline: Opener
) -> None:
    from aoi.sources.synthetic.boardgen import golden_board

    pipeline = open_pipeline(make_recipe())
    result = pipeline.inspect(_frame(golden_board(256, 256, 4242, "binary")))
    assert result.verdict is Verdict.ERROR
    assert result.error_kind is ErrorKind.REGISTRATION
    assert "correlation" in result.error


def test_tiled_frame_finds_a_defect_on_a_seam(
    make_recipe: RecipeFactory, open_pipeline: Opener
) -> None:
    recipe = make_recipe(name="tiled", width=400, height=300, mode="tiles", tile=128)
    pipeline = open_pipeline(recipe)
    assert len(pipeline.inputs.tiles) > 4
    seam_x = pipeline.inputs.tiles[1].x0 + 8  # inside the overlap of tiles 0 and 1
    img = pipeline.template.copy()
    img[40:52, seam_x : seam_x + 12] = 255 - img[40:52, seam_x : seam_x + 12]
    result = pipeline.inspect(_frame(img))
    assert result.verdict is Verdict.NG
    assert len(result.defects) == 1, "a defect in an overlap is reported once"


def test_subscribing_after_start_is_refused() -> None:
    with EventBus() as bus, pytest.raises(RuntimeError, match="must come before the bus starts"):
        bus.subscribe("late", print)


def test_run_on_synthetic_source_publishes_every_result(
    make_recipe: RecipeFactory, open_pipeline: Opener
) -> None:
    loaded = load_recipe(make_recipe())
    got: list[InspectionResult] = []
    bus = EventBus()
    bus.subscribe("collector", got.append)
    backend = create_backend("onnxruntime", loaded.model_path, loaded.recipe.geometry.profile)
    with backend, bus:
        pipeline = Pipeline(loaded, backend, events=bus)
        with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=1) as source:
            stats = run_cycles(pipeline, source, cycles=12)
    assert stats.cycles == 12
    assert len(got) == 12
    assert [r.inspection_id for r in got] == list(range(1, 13))
    assert all(r.truth is not None for r in got)
    # The difference model flags exactly the boards the source made defective.
    expected = [Verdict.NG if r.truth.is_defective else Verdict.OK for r in got]  # type: ignore[union-attr]
    assert {Verdict.OK, Verdict.NG} == set(expected), "the stream mixes good and defective boards"
    assert [r.verdict for r in got] == expected
    assert stats.board_accuracy == 1.0
    summary = stats.summary()
    assert summary["cycles"] == 12
    assert sum(summary["verdicts"].values()) == 12
    assert summary["cycle_ms"]["p50"] > 0
    assert set(summary["stages_ms"]) == set(STAGES)


class _FlakySource:
    """A source double: what a camera does when frames stop arriving or arrive broken.

    The real GenICam timeout is tested against viky.cti in test_genicam_source.py; here the
    point is what the station loop does with the exception, so a double is enough.
    """

    name = "flaky"

    def __init__(self, good: np.ndarray) -> None:
        self.good = good
        self.calls = 0

    def __enter__(self) -> _FlakySource:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def describe(self) -> str:
        return "A flaky test camera"

    def grab(self, timeout_s: float = 1.0) -> Frame:
        self.calls += 1
        if self.calls == 2:
            raise CameraTimeout(f"no frame within {timeout_s} s from device sim-1")
        if self.calls == 3:
            raise SourceError("replay: bad.png is not a readable image")
        return _frame(self.good, self.calls)


def test_camera_timeout_and_bad_file_do_not_stop_the_loop(
    make_recipe: RecipeFactory, open_pipeline: Opener
) -> None:
    pipeline = open_pipeline(make_recipe())
    results: list[InspectionResult] = []
    source = _FlakySource(pipeline.template)
    stats = run_cycles(pipeline, source, cycles=4, on_result=results.append)
    assert [r.verdict for r in results] == [Verdict.OK, Verdict.ERROR, Verdict.ERROR, Verdict.OK]
    assert [r.error_kind for r in results] == [
        ErrorKind.NONE,
        ErrorKind.CAMERA_TIMEOUT,
        ErrorKind.BAD_FRAME,
        ErrorKind.NONE,
    ]
    assert "no frame within" in results[1].error
    assert "bad.png" in results[2].error
    assert stats.verdicts["ERROR"] == 2
    assert stats.summary()["errors"] == {"camera_timeout": 1, "bad_frame": 1}


def test_stop_event_ends_an_endless_run(make_recipe: RecipeFactory, open_pipeline: Opener) -> None:
    pipeline = open_pipeline(make_recipe())
    stop = threading.Event()
    seen: list[InspectionResult] = []

    def on_result(r: InspectionResult) -> None:
        seen.append(r)
        if len(seen) == 3:
            stop.set()

    stats = run_cycles(
        pipeline, _FlakySource(pipeline.template), cycles=None, stop=stop, on_result=on_result
    )
    assert stats.cycles == 3


def test_missing_and_broken_models_are_model_errors(
    tmp_path: Path, make_recipe: RecipeFactory
) -> None:
    profile = load_recipe(make_recipe()).recipe.geometry.profile
    with pytest.raises(ModelError, match="model file not found"):
        OnnxRuntimeBackend(tmp_path / "none.onnx", profile).__enter__()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"junk\.onnx: not a loadable ONNX model"):
        OnnxRuntimeBackend(junk, profile).__enter__()


def test_input_outside_the_profile_is_a_clear_error(
    make_recipe: RecipeFactory, open_pipeline: Opener
) -> None:
    loaded = load_recipe(make_recipe())
    with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile) as backend:
        outside = r"\[1, 2, 512, 512\] lies outside the recipe profile"
        with pytest.raises(InferenceError, match=outside):
            backend.predict(np.zeros((1, 2, 512, 512), np.uint8))
        with pytest.raises(InferenceError, match="must be uint8, got float32"):
            backend.predict(np.zeros((1, 2, 256, 256), np.float32))
        out = backend.predict(np.zeros((1, 2, 256, 256), np.uint8))
    assert out.shape == (1, 7, 64, 64)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (np.zeros((64, 64), np.float32), "Frame.image must be uint8 or uint16, got float32"),
        (
            np.zeros((64, 64, 4), np.uint8),
            "Frame.image must be HxW or HxWx3, got shape (64, 64, 4)",
        ),
        (np.zeros((8, 64), np.uint8), "at least 16x16 px, got 64x8"),
    ],
)
def test_frames_of_the_wrong_type_are_refused_at_the_source(
    image: np.ndarray, expected: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        _frame(image)


def test_colour_and_16_bit_frames_are_inspected(
    make_recipe: RecipeFactory, open_pipeline: Opener
) -> None:
    pipeline = open_pipeline(make_recipe())
    bgr = cv2.cvtColor(pipeline.template, cv2.COLOR_GRAY2BGR)
    assert pipeline.inspect(_frame(bgr)).verdict is Verdict.OK
    wide = pipeline.template.astype(np.uint16) << 8
    assert pipeline.inspect(_frame(wide)).verdict is Verdict.OK


def test_backend_factory_picks_what_is_installed(make_recipe: RecipeFactory) -> None:
    import onnxruntime as ort

    loaded = load_recipe(make_recipe())
    profile = loaded.recipe.geometry.profile
    auto = create_backend("auto", loaded.model_path, profile)
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert isinstance(auto, OnnxRuntimeBackend)
    assert auto.name == ("onnxruntime-cuda" if has_cuda else "onnxruntime-cpu")
    with pytest.raises(ModelError, match="backend must be one of auto, onnxruntime"):
        create_backend("openvino", loaded.model_path, profile)


class _Plc:
    """A trigger source double announcing three parts, with gaps in between (no part waiting)."""

    def __init__(self) -> None:
        self.calls = 0
        self.published: list[InspectionResult] = []

    def wait_trigger(self, timeout_s: float) -> Trigger | None:
        self.calls += 1
        if self.calls % 2:
            return None
        # the PLC link numbers accepted parts (its inspection_id); here 500 + the part's call
        return Trigger(
            part_sequence=1000 + self.calls,
            serial=f"SN{self.calls}",
            inspection_id=500 + self.calls,
        )

    def publish(self, result: InspectionResult) -> None:
        self.published.append(result)


def test_triggered_run_inspects_announced_parts_and_hands_verdicts_to_the_sink(
    make_recipe: RecipeFactory,
) -> None:
    loaded = load_recipe(make_recipe())
    plc = _Plc()
    with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile) as backend:
        pipeline = Pipeline(loaded, backend, sinks=[plc])
        stats = run_cycles(pipeline, _FlakySource(pipeline.template), cycles=3, triggers=plc)
    assert stats.cycles == 3
    assert [r.part_sequence for r in plc.published] == [1002, 1004, 1006]
    assert [r.serial for r in plc.published] == ["SN2", "SN4", "SN6"]
    assert [r.inspection_id for r in plc.published] == [502, 504, 506]  # the PLC's own ids
    assert plc.published[1].verdict is Verdict.ERROR  # the flaky camera's timeout, still answered


def test_the_strip_the_camera_did_not_see_gives_no_false_call(
    make_recipe: RecipeFactory, open_pipeline: Opener
) -> None:
    """A board shifted 3 px left: the template's left 3 columns were not seen by the camera, and
    after registration they hold replicated border. A copper stub there must not be a defect."""
    from aoi.sources.synthetic.boardgen import golden_board

    template = golden_board(256, 256, 11, "binary")
    template[:, :4] = 255
    template[100:160, :3] = 0  # copper touching the left edge of the field of view
    pipeline = open_pipeline(make_recipe(template=template))
    shift_left = np.float32([[1, 0, -3], [0, 1, 0]])
    moved = cv2.warpAffine(template, shift_left, (256, 256), borderMode=cv2.BORDER_REPLICATE)
    result = pipeline.inspect(_frame(moved))
    assert result.registration is not None
    assert result.registration.shift_x_px == pytest.approx(-3.0, abs=0.1)
    assert result.verdict is Verdict.OK, [d.bbox_xyxy_px for d in result.defects]


@pytest.mark.parametrize(("margin", "verdict"), [(None, Verdict.NG), (12, Verdict.OK)])
def test_the_recipe_edge_margin_decides_whether_a_blob_near_the_unseen_edge_is_inspected(
    make_recipe: RecipeFactory, open_pipeline: Opener, margin: int | None, verdict: Verdict
) -> None:
    """A board shifted 3 px left with a copper blob centred 10 px from the frame's right edge:
    inside what a recipe without ``edge_margin_px`` inspects (4 px), outside 12 px."""
    from aoi.sources.synthetic.boardgen import golden_board

    template = golden_board(256, 256, 11, "binary")
    template[96:160, 200:] = 255  # bare laminate round the blob
    pipeline = open_pipeline(make_recipe(template=template, edge_margin=margin))
    shift_left = np.float32([[1, 0, -3], [0, 1, 0]])
    moved = cv2.warpAffine(template, shift_left, (256, 256), borderMode=cv2.BORDER_REPLICATE)
    moved[124:132, 239:247] = 0  # spurious copper, centre x 243 in the frame
    result = pipeline.inspect(_frame(moved))
    assert result.registration is not None
    assert result.registration.shift_x_px == pytest.approx(-3.0, abs=0.1)
    assert result.verdict is verdict, [d.bbox_xyxy_px for d in result.defects]


def test_padded_batches_give_the_unpadded_results(make_recipe: RecipeFactory) -> None:
    """The CUDA path pads a short batch to the profile's opt batch (one input shape for the
    provider); the padding must not change the real boards' outputs, and is really fed."""
    loaded = load_recipe(make_recipe())
    base = loaded.recipe.geometry.profile
    profile = base.model_copy(
        update={
            "opt": base.opt.model_copy(update={"batch": 4}),
            "max": base.max.model_copy(update={"batch": 4}),
        }
    )
    rng = np.random.default_rng(7)
    boards = rng.integers(0, 256, (3, 2, 256, 256), dtype=np.uint8)
    with OnnxRuntimeBackend(loaded.model_path, profile, threads=1) as plain:
        assert not plain.pad_batch  # off by default on the CPU
        expected = plain.predict(boards)
    with OnnxRuntimeBackend(loaded.model_path, profile, threads=1, pad_batch=True) as padded:
        session = padded._session
        assert session is not None
        fed: list[tuple[int, ...]] = []
        real_run = session.run

        def recording_run(names, feeds):  # type: ignore[no-untyped-def]
            fed.append(next(iter(feeds.values())).shape)
            return real_run(names, feeds)

        session.run = recording_run  # type: ignore[method-assign]
        got = padded.predict(boards)
        full = padded.predict(np.concatenate([boards, boards[:1]]))
    assert fed == [(4, 2, 256, 256), (4, 2, 256, 256)]
    assert got.shape == expected.shape and got.shape[0] == 3
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(full[:3], expected, atol=1e-5)
    assert OnnxRuntimeBackend(loaded.model_path, profile, device="cuda").pad_batch


def test_onnxruntime_pool_threads_sleep_between_runs(make_recipe: RecipeFactory) -> None:
    """Spinning pool threads would take a core from registration and the GUI (2-core PCs)."""
    loaded = load_recipe(make_recipe())
    with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile) as backend:
        assert backend._session is not None
        options = backend._session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
