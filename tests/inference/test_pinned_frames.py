"""Which frame memory a station's sources get (aoi/inference/pinned_frames.py)."""

from __future__ import annotations

import gc
import logging

import numpy as np
import onnxruntime as ort
import pytest

from aoi.framemem import HEAP, SlotPool
from aoi.inference import pinned_frames
from aoi.inference.tensorrt.cuda_mem import CudaUnavailable


def test_a_cpu_station_keeps_heap_frames() -> None:
    with pinned_frames.frame_memory("onnxruntime-cpu") as memory:
        assert memory is HEAP


@pytest.fixture
def no_cuda_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuda-python absent, as on this machine; made certain for a machine that has it."""

    def absent() -> None:
        raise CudaUnavailable("cuda-python is not installed (no module named 'cuda')")

    monkeypatch.setattr(pinned_frames, "cudart", absent)


@pytest.mark.usefixtures("no_cuda_python")
def test_a_gpu_station_without_cuda_python_keeps_heap_frames_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO), pinned_frames.frame_memory("onnxruntime-cuda") as memory:
        assert memory is HEAP
    assert "frames in pageable memory: cuda-python is not installed" in caplog.text


def test_the_switch_keeps_heap_frames_on_a_gpu_station(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pinned_frames.SWITCH, "0")
    with pinned_frames.frame_memory("tensorrt-fp16") as memory:
        assert memory is HEAP


_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _CUDA, reason="needs onnxruntime-gpu and a CUDA device (GPU machine)")
def test_a_gpu_station_gets_page_locked_frames() -> None:
    pytest.importorskip("cuda.bindings", reason="needs cuda-python (the gpu extra)")
    from aoi.inference.tensorrt.cuda_mem import call, cudart

    with pinned_frames.frame_memory("onnxruntime-cuda") as memory:
        assert isinstance(memory, SlotPool)
        frame = memory.empty((3000, 4096), np.uint8)
        frame[:] = 5
        address = frame.__array_interface__["data"][0]
        attributes = call("cudaPointerGetAttributes", address)
        assert attributes.type == cudart().cudaMemoryType.cudaMemoryTypeHost
        assert memory.slots_made == 1 and int(frame.sum()) == 5 * frame.size
        del frame
        gc.collect()


@pytest.mark.usefixtures("no_cuda_python")
def test_the_doctor_line_says_where_frames_live(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pinned_frames.status("onnxruntime") == "ordinary memory (the network runs on the CPU)"
    assert pinned_frames.status("tensorrt").startswith("pageable memory: cuda-python is not")
    monkeypatch.setenv(pinned_frames.SWITCH, "0")
    assert pinned_frames.status("onnxruntime-cuda") == "pageable memory (AOI_PINNED_FRAMES=0)"
