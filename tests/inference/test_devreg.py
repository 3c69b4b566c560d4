"""Registration's measuring steps as ONNX graphs (aoi/inference/devreg.py): the same answer as the
CPU steps, the same accuracy against known motions, the same verdicts in the cycle.

Here the graphs run on ONNX Runtime's CPU provider with the standard DFT operator; on a GPU the
same graphs use the CUDA provider's Rfft/Irfft (checked for structure here, run where CUDA is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from aoi.errors import InferenceError, RegistrationError
from aoi.inference import devreg
from aoi.inference.devreg import DeviceSteps, coarse_graph, gradient_graph, patch_graph
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.regraph import GraphBuilder
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import RegistrationSettings, load_recipe
from aoi.regplan import peak_shifts
from aoi.sources.synthetic import SyntheticSource
from aoi.sources.synthetic.boardgen import golden_board
from aoi.types import InspectionResult
from aoi.vision.registration import Registrar
from tests.inference.shared_steps import assert_threads_get_their_own_answers
from tests.vision.test_registration_accuracy import MOTIONS, TOLERANCE_PX, corner_errors

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "board-a-640.toml"


def _pair(height: int, width: int, seed: int, look: str) -> tuple[Registrar, Registrar]:
    board = golden_board(height, width, seed, look)
    cpu = Registrar(board, RegistrationSettings())
    dev = Registrar(board, RegistrationSettings())
    dev.use_device(lambda plan: DeviceSteps(plan, device="cpu"))
    return cpu, dev


@pytest.mark.parametrize(
    ("height", "width", "look", "noise"),
    [(512, 640, "binary", 4.0), (640, 640, "grey", 0.0), (1024, 1024, "binary", 4.0)],
)
def test_device_steps_are_as_accurate_as_the_cpu_steps(
    height: int, width: int, look: str, noise: float
) -> None:
    cpu, dev = _pair(height, width, 5, look)
    assert (cpu.steps, dev.steps) == ("cpu", "onnxruntime-cpu")
    board = cpu.template
    errors_cpu = corner_errors(cpu, board, noise)
    errors_dev = corner_errors(dev, board, noise)
    assert len(errors_dev) == len(MOTIONS)
    # The bound, per motion: the device's answer within 0.05 px of the CPU's accuracy.
    assert (errors_dev <= errors_cpu + TOLERANCE_PX).all()
    assert errors_dev.max() < 0.1


def test_device_steps_match_the_cpu_on_a_large_panel() -> None:
    cpu, dev = _pair(3000, 4096, 9, "binary")
    errors = corner_errors(dev, cpu.template, 0.0)
    assert errors.max() < 0.05


def test_the_correlation_check_is_the_same() -> None:
    cpu, dev = _pair(640, 640, 5, "grey")
    board = cpu.template
    moved = np.roll(board, (2, -3), axis=(0, 1))
    a, b = cpu.register(moved), dev.register(moved)
    assert abs(a.correlation - b.correlation) < 1e-3
    np.testing.assert_allclose(a.transform, b.transform, atol=0.01)
    # A different board is refused by both, on the correlation rule.
    other = golden_board(640, 640, 77, "grey")
    for registrar in (cpu, dev):
        with pytest.raises(RegistrationError, match="correlation"):
            registrar.register(other)


def test_threads_sharing_the_device_buffers_get_their_own_answers() -> None:
    _cpu, dev = _pair(640, 640, 5, "binary")
    assert_threads_get_their_own_answers(dev)


def test_a_frame_of_another_size_is_refused() -> None:
    _cpu, dev = _pair(512, 640, 5, "binary")
    steps = DeviceSteps(Registrar(dev.template, RegistrationSettings())._patches.plan, "cpu")
    with pytest.raises(InferenceError, match="512, 640"), steps.frame(np.zeros((10, 10), np.uint8)):
        pass


def test_cuda_graphs_use_the_cuda_fft_and_are_valid_onnx() -> None:
    board = golden_board(1024, 1024, 5, "binary")
    plan = Registrar(board, RegistrationSettings())._patches.plan
    models = [coarse_graph(plan, "cuda")[0], gradient_graph(plan, "cuda")]
    models += [patch_graph(plan, i, "cuda") for i in range(len(plan.levels))]
    ops = set()
    for data in models:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model)
        ops |= {(n.domain, n.op_type) for n in model.graph.node}
    assert ("com.microsoft", "Rfft") in ops and ("com.microsoft", "Irfft") in ops
    assert not any(op == "DFT" for _d, op in ops)


def _answers(registration: bool) -> tuple[list[InspectionResult], str]:
    loaded = load_recipe(RECIPE)
    got: list[InspectionResult] = []
    profile = loaded.recipe.geometry.profile
    with OnnxRuntimeBackend(
        loaded.model_path, profile, threads=1, warp=True, registration=registration
    ) as be:
        pipeline = Pipeline(loaded, be)
        with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=5) as source:
            run_cycles(pipeline, source, cycles=12, on_result=got.append)
        return got, pipeline.registrar.steps


@pytest.mark.slow
def test_the_cycle_gives_the_same_verdicts_with_registration_on_the_device() -> None:
    (cpu, where_cpu), (dev, where_dev) = _answers(False), _answers(True)
    assert (where_cpu, where_dev) == ("cpu", "onnxruntime-cpu")
    assert [r.verdict for r in cpu] == [r.verdict for r in dev]
    for a, b in zip(cpu, dev, strict=True):
        assert a.registration is not None and b.registration is not None
        np.testing.assert_allclose(a.registration.transform, b.registration.transform, atol=0.02)
        assert len(a.defects) == len(b.defects)
    assert sum(len(r.defects) for r in cpu) > 3


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="needs onnxruntime-gpu and a CUDA device (measured on the GPU machine)",
)
def test_cuda_steps_match_the_cpu_steps() -> None:
    board = golden_board(640, 640, 5, "binary")
    cpu = Registrar(board, RegistrationSettings())
    gpu = Registrar(board, RegistrationSettings())
    gpu.use_device(lambda plan: DeviceSteps(plan, device="cuda"))
    errors = corner_errors(gpu, board, 4.0)
    assert (errors <= corner_errors(cpu, board, 4.0) + TOLERANCE_PX).all()


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="needs onnxruntime-gpu and a CUDA device (measured on the GPU machine)",
)
def test_the_graphs_run_on_cuda_alone_as_captured_graphs() -> None:
    """Every node on the CUDA provider (no CPU fallback, which would copy back mid-graph) and
    the CUDA graphs captured (ONNX Runtime refuses to capture a graph with CPU nodes)."""
    plan = Registrar(golden_board(640, 640, 5, "binary"), RegistrationSettings())._patches.plan
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    models = [coarse_graph(plan, "cuda")[0], gradient_graph(plan, "cuda")]
    models += [patch_graph(plan, i, "cuda") for i in range(len(plan.levels))]
    for model in models:
        ort.InferenceSession(model, options, providers=["CUDAExecutionProvider"])
    steps = DeviceSteps(plan, device="cuda")
    assert steps._coarse.graph and steps._gradient.graph


def test_the_peak_graph_finds_the_hosts_peaks_also_across_the_wrap() -> None:
    rng = np.random.default_rng(3)
    k, h, w = 6, 32, 40
    surfaces = rng.normal(0, 0.01, (k, h, w)).astype(np.float32)
    # Peaks inside, on every edge and in a corner, where the 3x3 centroid wraps around.
    for i, (y, x) in enumerate([(5, 7), (0, 20), (h - 1, 3), (12, 0), (9, w - 1), (0, 0)]):
        surfaces[i, y, x] = 1.0
        surfaces[i, (y + 1) % h, x] = 0.4
        surfaces[i, y, (x - 1) % w] = 0.3
    g = GraphBuilder("onnx")
    g.input("s", np.float32, [k, h, w])
    g.output(g.op("Identity", g.peak("s", k, h, w), name="shifts"), np.float32, [k, 2])
    session = ort.InferenceSession(g.model(), providers=["CPUExecutionProvider"])
    (got,) = session.run(["shifts"], {"s": surfaces})
    want = peak_shifts(surfaces)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (want < 0).any()  # the signed wrap was exercised


@pytest.mark.parametrize(("height", "width"), [(480, 500), (640, 640), (3000, 4096)])
def test_the_coarse_run_measures_the_first_patch_fit_too(
    height: int, width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coarse graph also measures the coarse patches at its own translation, where the fit
    measures them first: no patch graph runs for that, and the answer is the CPU's."""
    cpu, dev = _pair(height, width, 5, "binary")
    runs: list[str] = []
    plain = devreg._Bound.run

    def counted(self: devreg._Bound, *fetch: str) -> dict[str, np.ndarray]:
        runs.append(",".join(fetch))
        return plain(self, *fetch)

    monkeypatch.setattr(devreg._Bound, "run", counted)
    moved = np.roll(cpu.template, (3, -2), axis=(0, 1))
    a, b = cpu.register(moved), dev.register(moved)
    assert runs[0] == "shift,first"
    assert "shifts" not in runs  # no patch graph ran
    assert 2 <= len(runs) <= 4  # the coarse run, then the gradient steps
    np.testing.assert_allclose(a.transform, b.transform, atol=0.02)


@pytest.mark.slow
def test_the_pipelined_loop_with_device_steps_answers_like_the_sequential_one() -> None:
    """Two registration threads share the device buffers (one frame at a time) and the backend's
    device lock with the network: the same verdicts and ids, in order."""
    from aoi.pipelined import run_pipelined

    loaded = load_recipe(RECIPE)
    runs: dict[str, list[InspectionResult]] = {"seq": [], "pipe": []}
    profile = loaded.recipe.geometry.profile
    with OnnxRuntimeBackend(
        loaded.model_path, profile, threads=1, warp=True, registration=True
    ) as be:
        pipeline = Pipeline(loaded, be)
        assert pipeline.registrar.steps == "onnxruntime-cpu"
        for name, got in runs.items():
            with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=9) as source:
                if name == "seq":
                    run_cycles(pipeline, source, cycles=10, on_result=got.append)
                else:
                    run_pipelined(pipeline, source, cycles=10, on_result=got.append)
    seq, pipe = runs["seq"], runs["pipe"]
    assert [r.frame_name for r in seq] == [r.frame_name for r in pipe]
    assert [r.verdict for r in seq] == [r.verdict for r in pipe]
    for a, b in zip(seq, pipe, strict=True):
        assert a.registration is not None and b.registration is not None
        np.testing.assert_allclose(a.registration.transform, b.registration.transform, atol=1e-5)
    assert [r.inspection_id for r in pipe] == sorted(r.inspection_id for r in pipe)
