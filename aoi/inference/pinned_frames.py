"""Page-locked frame memory for a station whose network runs on a CUDA device.

The frames a source hands out (:mod:`aoi.framemem`) come from page-locked host memory
(``cudaMallocHost``, through cuda-python as the TensorRT backend's buffers do), so the one
upload of each board is a direct transfer: 0.24 ms for a 12 MB panel frame on the H200's host
against 0.94-1.05 ms from pageable memory, and 0.018 against 0.048 ms at 640x640
(docs/benchmarks.md, "Issue 15, twelfth round"). A CPU station, a station without cuda-python
(the ``gpu`` extra), and ``AOI_PINNED_FRAMES=0`` (to measure the difference) keep ordinary heap
memory, as before.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from aoi.framemem import HEAP, FrameMemory, SlotPool
from aoi.inference.tensorrt.cuda_mem import CudaError, CudaUnavailable, call, cudart

log = logging.getLogger(__name__)

#: Page-locked memory one station holds for frames at most (a panel frame is 12 MB: 21 of them).
LIMIT_BYTES = 256 << 20
#: Set to 0 to keep frames in pageable memory on a GPU station.
SWITCH = "AOI_PINNED_FRAMES"


def _runs_on_cuda(backend_name: str) -> bool:
    return backend_name.startswith(("onnxruntime-cuda", "tensorrt"))


def _allocate(nbytes: int) -> tuple[int, Callable[[], None]] | None:
    try:
        address = int(call("cudaMallocHost", nbytes))
    except CudaError as err:
        log.warning("frame memory: page-locked memory refused (%s); this frame uses the heap", err)
        return None

    def release() -> None:
        try:
            call("cudaFreeHost", address)
        except CudaError as err:  # a finaliser must not raise: the log keeps it
            log.warning("frame memory: freeing page-locked memory failed: %s", err)

    return address, release


def _pageable_because(backend_name: str) -> str | None:
    """Why frames for ``backend_name`` stay in ordinary memory, or None: page-locked."""
    if not _runs_on_cuda(backend_name):
        return "ordinary memory (the network runs on the CPU)"
    if os.environ.get(SWITCH, "1") == "0":
        return f"pageable memory ({SWITCH}=0)"
    try:
        cudart()
    except CudaUnavailable as err:
        return f"pageable memory: {err}"
    return None


def status(backend_name: str) -> str:
    """Where frames live for a backend named ``backend_name``, in one line (``aoi doctor``)."""
    because = _pageable_because(backend_name)
    if because is not None:
        return because
    return f"page-locked memory, up to {LIMIT_BYTES >> 20} MB (each upload a direct transfer)"


@contextmanager
def frame_memory(backend_name: str) -> Iterator[FrameMemory]:
    """The memory a source should put frames in for a backend named ``backend_name``."""
    because = _pageable_because(backend_name)
    if because is not None:
        log.info("frames in %s", because)
        yield HEAP
        return
    with SlotPool("page-locked", _allocate, LIMIT_BYTES) as pool:
        log.info("frames in page-locked memory (up to %d MB)", LIMIT_BYTES >> 20)
        yield pool
