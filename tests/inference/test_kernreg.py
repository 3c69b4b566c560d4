"""Registration's measuring steps as CUDA kernels (aoi/inference/kernreg.py, kernreg.cu).

The kernels need a CUDA device and cuda-python: those tests skip here and run on the GPU
machine (tools/gpu/test-issue15w.sh). What can run anywhere does: the backend's fallback to
devreg's graphs where the kernels cannot be built, the option that turns them off, and the
kernel source compiling under NVRTC where cuda-python's NVRTC is installed (no device needed).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from aoi.errors import InferenceError, RegistrationError
from aoi.inference import kernreg
from aoi.inference.cuda_kernels import Launch, Ptr, _packed, available
from aoi.inference.cuda_options import ENV_VAR, CudaOptions
from aoi.inference.devreg import DeviceSteps
from aoi.inference.kernparts import twiddles
from aoi.inference.kernreg import KernelSteps, kernels_for, status
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import RegistrationSettings, load_recipe
from aoi.regplan import EstimatesWhole
from aoi.sources.synthetic import SyntheticSource
from aoi.sources.synthetic.boardgen import golden_board
from aoi.vision.registration import Registrar
from tests.inference.shared_steps import assert_threads_get_their_own_answers
from tests.vision.test_registration_accuracy import TOLERANCE_PX, corner_errors

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "board-a-640.toml"


def _device_ready() -> bool:
    if available() is not None:
        return False
    from aoi.inference.tensorrt.cuda_mem import CudaError, device_count

    try:
        return device_count() > 0
    except CudaError:
        return False


HAS_DEVICE = _device_ready()
HAS_ORT_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
needs_device = pytest.mark.skipif(
    not HAS_DEVICE, reason="needs cuda-python and a CUDA device (run on the GPU machine)"
)


def _plan(height: int, width: int, look: str = "binary"):
    return Registrar(golden_board(height, width, 5, look), RegistrationSettings())._patches.plan


@pytest.mark.skipif(HAS_DEVICE, reason="the kernels build here: the fallback cannot be seen")
def test_without_cuda_the_backend_measures_with_devregs_graphs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="aoi.inference.kernreg"):
        assert kernels_for(_plan(640, 640), threading.Lock()) is None
    assert "registration uses ONNX Runtime's graphs" in caplog.text
    assert "registration kernels could not be built" in caplog.text


def test_the_kernels_can_be_turned_off_by_name() -> None:
    assert CudaOptions.parse("graph,nokernels") == CudaOptions(kernels=False)
    assert CudaOptions.parse("graph,nokernels").label == "graph,nokernels"
    assert CudaOptions().kernels


def test_the_doctor_line_says_where_registration_measures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert status("onnxruntime").startswith("on the CPU (OpenCV)")
    monkeypatch.setenv(ENV_VAR, "graph,nokernels")
    assert status("onnxruntime-cuda") == (
        "ONNX Runtime's graphs on the device (AOI_ORT_CUDA=graph,nokernels)"
    )
    monkeypatch.setenv(ENV_VAR, "graph,noreg")
    assert status("onnxruntime-cuda") == "on the CPU (OpenCV): AOI_ORT_CUDA=graph,noreg"
    monkeypatch.setenv(ENV_VAR, "graph,kernels9")
    assert status("onnxruntime-cuda").startswith("unknown: AOI_ORT_CUDA='graph,kernels9'")
    monkeypatch.delenv(ENV_VAR)
    if available() is None:
        assert status("onnxruntime-cuda").startswith("the station's CUDA kernels")
        assert status("onnxruntime-cuda").endswith("queued behind them call by call)")
        monkeypatch.setenv(ENV_VAR, "graph,capture")
        assert status("onnxruntime-cuda").endswith("behind them as one graph where CUDA allows)")
        monkeypatch.setenv(ENV_VAR, "graph,nochain")
        assert status("onnxruntime-cuda").endswith("AOI_ORT_CUDA=nochain)")
    else:  # the reason names what to install
        assert "install" in status("onnxruntime-cuda")


def test_launch_arguments_are_packed_by_kind() -> None:
    assert _packed(Ptr(0x7F0012345678)).dtype == np.uint64
    assert int(_packed(Ptr(0x7F0012345678))[0]) == 0x7F0012345678
    assert _packed(640).dtype == np.int32 and int(_packed(640)[0]) == 640
    assert _packed(2.0).dtype == np.float32 and float(_packed(2.0)[0]) == 2.0
    with pytest.raises(TypeError, match="Ptr, an int or a float"):
        _packed("frame")


def test_the_twiddles_are_the_dft_s() -> None:
    n = 10
    tw = twiddles(n)
    x = np.random.default_rng(1).normal(size=n)
    # F[u] = sum_x f[x] tw[(u x) mod n], as the kernels index them.
    direct = [sum(x[i] * complex(*tw[(u * i) % n]) for i in range(n)) for u in range(n)]
    np.testing.assert_allclose(direct, np.fft.fft(x), atol=1e-5)


@pytest.mark.skipif(
    importlib.util.find_spec("cuda") is None, reason="cuda-python's NVRTC is not installed"
)
def test_the_kernel_source_compiles_under_nvrtc() -> None:
    """Compiled for an H100/H200 (sm_90); NVRTC needs no device."""
    from aoi.inference.cuda_kernels import compile_cubin

    try:
        cubin = compile_cubin("kernreg.cu", "sm_90")
    except InferenceError as err:
        if "NVRTC" in str(err) and "could not compile" in str(err):
            raise
        pytest.skip(f"NVRTC's library is not loadable here: {err}")
    assert cubin[:4] == b"\x7fELF"


@needs_device
@pytest.mark.parametrize(
    ("height", "width", "look", "noise"),
    [(512, 640, "binary", 4.0), (640, 640, "grey", 0.0), (1024, 1024, "binary", 4.0)],
)
def test_kernel_steps_are_as_accurate_as_the_cpu_steps(
    height: int, width: int, look: str, noise: float
) -> None:
    board = golden_board(height, width, 5, look)
    cpu = Registrar(board, RegistrationSettings())
    gpu = Registrar(board, RegistrationSettings())
    gpu.use_device(lambda plan: KernelSteps(plan, network=False))
    assert gpu.steps == "cuda-kernels"
    errors = corner_errors(gpu, board, noise)
    assert (errors <= corner_errors(cpu, board, noise) + TOLERANCE_PX).all()
    assert errors.max() < 0.1


@needs_device
@pytest.mark.parametrize(("height", "width"), [(640, 640), (3000, 4096)])
def test_each_step_gives_devregs_numbers(height: int, width: int) -> None:
    """Step for step against the ONNX graphs (on the CPU provider): the same measurements."""
    plan = _plan(height, width)
    kern, graph = KernelSteps(plan, network=False), DeviceSteps(plan, device="cpu")
    board = golden_board(height, width, 5, "binary")
    moved = np.ascontiguousarray(np.roll(board, (3, -2), axis=(0, 1)))
    warp = np.array([[1.0, 0.001, -2.1], [-0.001, 1.0, 2.9]])
    try:
        with kern.frame(moved) as a, graph.frame(moved) as b:
            np.testing.assert_allclose(a.coarse_shift(), b.coarse_shift(), atol=1e-3)
            for level in range(len(plan.levels)):
                np.testing.assert_allclose(
                    a.patch_shifts(level, warp), b.patch_shifts(level, warp), atol=1e-3
                )
            np.testing.assert_allclose(a.gradient(warp), b.gradient(warp), atol=1e-3)
            assert abs(a.correlation() - b.correlation()) < 1e-4
    finally:
        kern.close()


@needs_device
def test_every_step_replays_as_one_cuda_graph_and_a_wrong_frame_is_refused() -> None:
    steps = KernelSteps(_plan(640, 640), network=False)
    try:
        runs = [steps._coarse_run, steps._gradient_run, *steps._patch_runs, steps._estimate_run]
        assert all(run.graph is not None for run in runs)
        with (
            pytest.raises(InferenceError, match="640, 640"),
            steps.frame(np.zeros((10, 10), np.uint8)),
        ):
            pass
    finally:
        steps.close()


@needs_device
@pytest.mark.parametrize(
    ("height", "width", "look"), [(640, 640, "grey"), (512, 640, "binary"), (3000, 4096, "binary")]
)
def test_the_fit_on_the_device_is_the_hosts_loop(height: int, width: int, look: str) -> None:
    """One launch (the fit and the schedule on the device) against the host's loop over the same
    kernels: the same warp, correlation and number of gradient steps, frame after frame."""
    board = golden_board(height, width, 5, look)
    plan = Registrar(board, RegistrationSettings())._patches.plan
    whole, steps = KernelSteps(plan, network=False), KernelSteps(plan, network=False, whole=False)
    host = Registrar(board, RegistrationSettings())
    host.use_device(lambda _plan: steps)
    counted: list[int] = []
    plain = kernreg._KernelFrame.gradient

    def gradient(self: kernreg._KernelFrame, warp: np.ndarray) -> np.ndarray:
        counted[-1] += 1
        return plain(self, warp)

    try:
        for i, (dx, dy, angle) in enumerate([(3.0, -2.0, 0.0), (-2.5, 1.5, 0.8), (5.3, -4.7, 1.7)]):
            truth = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
            truth[:, 2] += (dx, dy)
            moved = cv2.warpAffine(board, truth, (width, height), borderMode=cv2.BORDER_REPLICATE)
            with whole.frame(moved) as frame:
                assert isinstance(frame, EstimatesWhole)
                warp, correlation = frame.estimate()
                device_steps = frame.gradient_steps
            counted.append(0)
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(kernreg._KernelFrame, "gradient", gradient)
                want = host.register(moved)
            np.testing.assert_allclose(warp, want.transform, atol=1e-4, err_msg=f"motion {i}")
            assert abs(correlation - want.correlation) < 1e-5
            assert device_steps == counted[-1] >= 1
    finally:
        whole.close()
        steps.close()


@needs_device
def test_a_wrong_or_blank_board_is_refused_not_aligned() -> None:
    """Another board fails the correlation rule, as on the CPU; a blank frame (no texture to
    correlate: zero spectra, flat patches) gives a refusal too, never a NaN warp passed on."""
    board = golden_board(640, 640, 5, "grey")
    cpu, gpu = Registrar(board, RegistrationSettings()), Registrar(board, RegistrationSettings())
    gpu.use_device(lambda plan: KernelSteps(plan, network=False))
    other = golden_board(640, 640, 77, "grey")
    for registrar in (cpu, gpu):
        with pytest.raises(RegistrationError, match="correlation"):
            registrar.register(other)
        with pytest.raises(RegistrationError, match="correlation"):
            registrar.register(np.zeros_like(board))
    moved = np.roll(board, (2, -3), axis=(0, 1))
    a, b = cpu.register(moved), gpu.register(moved)
    assert abs(a.correlation - b.correlation) < 1e-3
    np.testing.assert_allclose(a.transform, b.transform, atol=0.01)


@needs_device
def test_threads_sharing_the_kernels_get_their_own_answers() -> None:
    dev = Registrar(golden_board(640, 640, 5, "binary"), RegistrationSettings())
    dev.use_device(lambda plan: KernelSteps(plan, network=False))
    assert_threads_get_their_own_answers(dev)


@pytest.mark.skipif(
    not (HAS_DEVICE and HAS_ORT_CUDA), reason="needs onnxruntime-gpu, cuda-python and a device"
)
def test_the_cuda_cycle_registers_with_the_kernels_and_keeps_the_cpu_verdicts() -> None:
    """The network reads the frame the kernels copied in: the verdicts of the CPU cycle."""
    loaded = load_recipe(RECIPE)
    profile = loaded.recipe.geometry.profile
    results = {}
    for device in ("cpu", "cuda"):
        with OnnxRuntimeBackend(loaded.model_path, profile, device=device, threads=1) as be:
            pipeline = Pipeline(loaded, be)
            want = "cuda-kernels" if device == "cuda" else "cpu"
            assert pipeline.registrar.steps == want
            got: list = []
            with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=9) as source:
                run_cycles(pipeline, source, cycles=12, on_result=got.append)
            results[device] = got
    cpu, gpu = results["cpu"], results["cuda"]
    assert [r.verdict for r in cpu] == [r.verdict for r in gpu]
    for a, b in zip(cpu, gpu, strict=True):
        assert a.registration is not None and b.registration is not None
        np.testing.assert_allclose(a.registration.transform, b.registration.transform, atol=0.02)
        assert len(a.defects) == len(b.defects)
    assert sum(len(r.defects) for r in cpu) > 3


@pytest.mark.skipif(importlib.util.find_spec("cuda") is not None, reason="cuda-python is here")
def test_launch_needs_cuda_python_or_says_how_to_install_it() -> None:
    with pytest.raises(InferenceError, match="install"):
        Launch(None, (1,), 32, ())
