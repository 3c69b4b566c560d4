"""The CUDA path's logic: options, buffer plans, the FP16 and fixed-shape models (CPU-runnable),
and, where onnxruntime-gpu offers CUDA, IO binding and CUDA graphs against the plain run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from aoi.errors import InferenceError, ModelError
from aoi.inference.base import CLASS_NAME, INPUT_NAME, SCORE_NAME
from aoi.inference.cuda_options import ENV_VAR, CudaOptions
from aoi.inference.fp16 import Fp32Span, softmax_tail, to_fp16
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.ort_cuda import fixed_shape, plan_buffers
from aoi.inference.reduce import reduced_model
from aoi.inference.warp import AFFINE_NAME, affine_feed, warp_model
from aoi.inference.warp import LAST_NODE as WARP_LAST_NODE
from aoi.recipe import load_recipe
from aoi.sources.replay import read_image
from aoi.sources.synthetic.source import SyntheticSource
from aoi.types import ClassMaps

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "aoi-defect-v3.onnx"
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_options_parse_each_mode_and_reject_unknown_words(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CudaOptions.parse("plain") == CudaOptions(io_binding=False, cuda_graph=False)
    assert CudaOptions.parse("bind") == CudaOptions(io_binding=True, cuda_graph=False)
    assert CudaOptions.parse("graph,fp16") == CudaOptions(fp16=True)
    assert CudaOptions.parse("bind,fp16").label == "bind,fp16"
    assert CudaOptions.parse("graph,nowarp") == CudaOptions(warp=False)
    assert CudaOptions.parse("graph,nowarp").label == "graph,nowarp"
    with pytest.raises(ModelError, match="unknown words"):
        CudaOptions.parse("graph,int8")
    monkeypatch.setenv(ENV_VAR, "plain")
    assert not CudaOptions.from_env().io_binding
    monkeypatch.delenv(ENV_VAR)
    assert CudaOptions.from_env() == CudaOptions()


def test_the_backend_takes_the_cuda_path_only_on_cuda_with_the_reduced_graph() -> None:
    loaded = load_recipe(REPO / "recipes" / "deeppcb-640.toml")
    profile = loaded.recipe.geometry.profile
    assert OnnxRuntimeBackend(loaded.model_path, profile, device="cuda").cuda == CudaOptions()
    assert OnnxRuntimeBackend(loaded.model_path, profile).cuda is None
    unreduced = OnnxRuntimeBackend(loaded.model_path, profile, device="cuda", reduce=False)
    assert unreduced.cuda is None


def test_a_buffer_plan_copies_back_one_class_byte_and_one_score_per_cell() -> None:
    plan = plan_buffers((8, 2, 1024, 1024), (8, 256, 256), "float32")
    assert plan.bytes_in == 8 * 2 * 1024 * 1024
    assert plan.bytes_back == 8 * 256 * 256 * 5
    assert plan_buffers((1, 2, 640, 640), (1, 160, 160), "float16").bytes_back == 160 * 160 * 3
    with pytest.raises(InferenceError, match=r"\[N, 2, H, W\]"):
        plan_buffers((1, 3, 640, 640), (1, 160, 160), "float32")
    with pytest.raises(InferenceError, match="N = 2"):
        plan_buffers((2, 2, 640, 640), (1, 160, 160), "float32")


def test_fp16_keeps_the_io_types_and_halves_the_weights() -> None:
    model = reduced_model(MODEL)
    half = to_fp16(model)
    io = {v.name: v.type.tensor_type.elem_type for v in [*half.graph.input, *half.graph.output]}
    assert io == {
        INPUT_NAME: TensorProto.UINT8,
        CLASS_NAME: TensorProto.UINT8,
        SCORE_NAME: TensorProto.FLOAT,
    }
    weights = [i for i in half.graph.initializer if i.dims]
    assert weights and all(
        i.data_type == TensorProto.FLOAT16
        for i in weights
        if i.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)
    )
    assert half.ByteSize() < 0.6 * model.ByteSize()
    casts = [a.i for n in half.graph.node if n.op_type == "Cast" for a in n.attribute]
    assert TensorProto.FLOAT16 in casts  # the input's normalisation computes in float16


def test_a_mixed_fp16_model_keeps_the_named_spans_in_fp32_and_runs() -> None:
    model = reduced_model(MODEL)
    names = [n.name for n in model.graph.node]
    span = Fp32Span(until="/stem/Relu", start="/Add_1")
    mixed = to_fp16(model, span)
    inits = {i.name: i.data_type for i in mixed.graph.initializer}
    stem = next(n for n in mixed.graph.node if n.name == "/stem/Conv")
    body = next(n for n in mixed.graph.node if n.name == names[names.index("/stem/Relu") + 1])
    assert all(inits[t] == TensorProto.FLOAT for t in stem.input if t in inits)
    assert any(inits[t] == TensorProto.FLOAT16 for t in body.input if t in inits)
    casts = [n for n in mixed.graph.node if n.op_type == "Cast" and n.output[0].endswith("_as16")]
    back = [n for n in mixed.graph.node if n.op_type == "Cast" and n.output[0].endswith("_as32")]
    assert casts and back  # into the FP16 body after the stem, back to FP32 before the tail
    with pytest.raises(ModelError, match="no node named"):
        to_fp16(model, Fp32Span(start="/nowhere"))
    assert CudaOptions.parse("graph,fp16,fp32from=/Add_1").fp32 == Fp32Span(start="/Add_1")
    assert softmax_tail(model) == Fp32Span(start="/Add_1")  # the logits' Add, then the softmax
    assert CudaOptions.parse("graph,fp16,fp32tail").label == "graph,fp16,fp32tail"
    assert CudaOptions.parse("graph,fp16,fp32from=/Add_1").label == "graph,fp16,fp32from=/Add_1"
    batch, _ = _synthetic_batch(1)
    cpu = ["CPUExecutionProvider"]
    want = ort.InferenceSession(model.SerializeToString(), providers=cpu).run(
        None, {INPUT_NAME: batch}
    )
    got = ort.InferenceSession(mixed.SerializeToString(), providers=cpu).run(
        None, {INPUT_NAME: batch}
    )
    assert (got[0] == want[0]).mean() > 0.999
    assert np.abs(got[1] - want[1]).max() < 0.05


def _synthetic_batch(n: int) -> tuple[np.ndarray, object]:
    loaded = load_recipe(REPO / "recipes" / "deeppcb-640.toml")
    template = read_image(loaded.template_path)
    settings = loaded.recipe.synthetic.model_copy(update={"defect_rate": 1.0})
    with SyntheticSource(template, settings, seed=7) as source:
        frames = [source.grab() for _ in range(n)]
    batch = np.stack([np.stack([f.image, template])[:, :640, :640] for f in frames])
    return np.ascontiguousarray(batch, np.uint8), loaded


def test_the_fp16_model_runs_on_the_cpu_close_to_fp32_on_synthetic_boards() -> None:
    batch, _ = _synthetic_batch(2)
    model = reduced_model(MODEL)
    cpu = ["CPUExecutionProvider"]
    full = ort.InferenceSession(model.SerializeToString(), providers=cpu)
    try:
        half = ort.InferenceSession(to_fp16(model).SerializeToString(), providers=cpu)
    except ort.capi.onnxruntime_pybind11_state.NotImplemented as err:
        pytest.skip(f"this onnxruntime's CPU provider has no float16 kernel: {err}")
    cls32, score32 = full.run(None, {INPUT_NAME: batch})
    cls16, score16 = half.run(None, {INPUT_NAME: batch})
    assert cls16.dtype == np.uint8 and score16.dtype == np.float32
    assert (cls16 == cls32).mean() > 0.999
    assert np.abs(score16 - score32).max() < 0.05


def test_a_fixed_shape_model_has_concrete_input_dims_and_runs() -> None:
    model = fixed_shape(reduced_model(MODEL), (1, 2, 256, 320))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 2, 256, 320]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    cls, score = session.run(None, {INPUT_NAME: np.zeros((1, 2, 256, 320), np.uint8)})
    assert cls.shape == score.shape and cls.shape[0] == 1
    with pytest.raises(ModelError, match="3-d input"):
        fixed_shape(onnx.load(str(MODEL)), (2, 640, 640))


@pytest.mark.skipif(not HAS_CUDA, reason="onnxruntime-gpu's CUDAExecutionProvider is not here")
@pytest.mark.parametrize("mode", ["bind", "graph"])
def test_bound_buffers_and_cuda_graphs_give_the_plain_runs_maps(mode: str) -> None:
    batch, loaded = _synthetic_batch(1)
    profile = loaded.recipe.geometry.profile  # type: ignore[attr-defined]
    with OnnxRuntimeBackend(
        loaded.model_path,
        profile,
        device="cuda",
        cuda=CudaOptions.parse("plain"),  # type: ignore[attr-defined]
    ) as plain:
        want = plain.predict(batch)
    with OnnxRuntimeBackend(
        loaded.model_path,
        profile,
        device="cuda",
        cuda=CudaOptions.parse(mode),  # type: ignore[attr-defined]
    ) as bound:
        for _ in range(4):  # the graph is captured on an early run and replayed after
            got = bound.predict(batch)
        assert bound.cuda_graphs == (1 if mode == "graph" else 0)
    assert isinstance(got, ClassMaps) and isinstance(want, ClassMaps)
    np.testing.assert_array_equal(got.classes, want.classes)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)


def test_fp16_with_the_device_warp_keeps_the_warp_in_fp32() -> None:
    """The warp samples pixel coordinates: in float16 a 640 px coordinate is off by up to 0.25
    px, and Range refuses float16 (the H200 run failed to build the session before this)."""
    model = warp_model(reduced_model(MODEL))
    half = to_fp16(model, Fp32Span(until=WARP_LAST_NODE))
    inits = {i.name: i.data_type for i in half.graph.initializer}
    assert inits["w_zero"] == inits["w_one"] == TensorProto.FLOAT
    assert TensorProto.FLOAT16 in inits.values()  # the network's weights are halved
    grid = next(n for n in half.graph.node if n.op_type == "GridSample")
    producer = {t: n for n in half.graph.node for t in n.output}
    assert producer[grid.input[1]].op_type == "Concat"  # fed by the float32 grid, no cast
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = np.zeros((1, 2, 64, 64), np.uint8)
    out = session.run(None, {INPUT_NAME: batch, AFFINE_NAME: affine_feed(None, batch.shape)})
    assert out[0].shape == (1, 32, 32)


@pytest.mark.skipif(not HAS_CUDA, reason="onnxruntime-gpu's CUDAExecutionProvider is not here")
def test_a_frame_handed_over_on_cuda_gives_the_maps_of_its_padded_batch() -> None:
    """aoi/inference/frame_input.py on the device (tools/gpu/frame_parity.py runs whole cycles)."""
    from aoi.types import FrameBatch

    batch, loaded = _synthetic_batch(1)
    profile = loaded.recipe.geometry.profile  # type: ignore[attr-defined]
    frame = FrameBatch(np.ascontiguousarray(batch[0, 0]), batch[:, 1:2].copy(), 1)
    with OnnxRuntimeBackend(loaded.model_path, profile, device="cuda") as be:
        assert be.takes_frames
        want = be.predict(frame.stacked())
        for _ in range(3):  # the first run captures the frame slot's graph
            got = be.predict(frame)
    assert isinstance(got, ClassMaps) and isinstance(want, ClassMaps)
    np.testing.assert_array_equal(got.classes, want.classes)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-3)
