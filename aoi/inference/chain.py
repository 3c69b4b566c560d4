"""The network queued behind registration on one stream: a board costs one round trip.

On the CUDA path a whole-frame board went: registration's kernels, a wait, the host's checks
and the affine map uploaded, then the network's run and a second wait
(aoi/inference/kernreg.py, aoi/inference/frame_input.py). Here the network's session runs on
the registration kernels' stream (ONNX Runtime's ``user_compute_stream``), so registration
queues, behind its own captured graph, the map the network needs (``affine_out``, written on
the device from the fit), the network's run (its CUDA graph, without the end-of-run wait:
``disable_synchronize_execution_providers``) and the reduced maps' copy back, then waits for
registration alone. The host checks the registration while the device runs the network; the
network stage then only collects the maps (:meth:`ChainedRuns.take`).

A queued run is used only for the board it was queued for (the very frame array, registered)
and while the slot's reference is still the one it read; anything else (the first board, a
template change, a board whose run was queued over) runs the ordinary way, so a chained run
never hands a board another board's maps. A ring of page-locked outputs keeps a queued run's
maps until its board takes them, also when the pipelined loop queues the next board first.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from aoi.errors import InferenceError
from aoi.inference.cuda_kernels import F64, Launch, Ptr
from aoi.inference.kernparts import DeviceMemory, Step
from aoi.inference.ort_cuda import ORT_ERRORS
from aoi.inference.tensorrt.cuda_mem import CudaError, call, cudart
from aoi.types import ClassMaps, FrameBatch

if TYPE_CHECKING:
    from aoi.inference.frame_input import FrameSlot, SharedFrame

log = logging.getLogger(__name__)

#: Queued runs whose maps are kept at once: the sequential loop needs one, the pipelined two.
RING = 3
#: ONNX Runtime's run option that leaves the stream running at the end of a run.
NO_SYNC = "disable_synchronize_execution_providers"


@dataclass
class _Queued:
    """One queued run: the board's frame, the slot's reference uploads then, and its outputs."""

    frame: np.ndarray | None
    references: int
    cls: np.ndarray
    score: np.ndarray
    cls_ptr: int
    score_ptr: int
    event: Any


class ChainedRuns:
    """A frame slot's network runs queued by registration on the kernels' stream.

    ``memory`` and ``stack`` are the kernels' (the stream is the slot session's compute stream;
    the ring's buffers and events live as long as the kernels), ``affine_out`` the kernel that
    writes the slot's ``affine`` input from the device fit's estimate at ``est``."""

    def __init__(
        self, memory: DeviceMemory, stack: ExitStack, slot: FrameSlot, affine_out: Any, est: int
    ) -> None:
        self._memory = memory
        self._slot = slot
        h, w = slot.frame.shape
        scale = (F64(2.0 / max(w - 1, 1)), F64(2.0 / max(h - 1, 1)))  # as normalised_warp
        self._affine = Launch(affine_out, (1,), 32, (Ptr(est), Ptr(slot.affine.data_ptr()), *scale))
        self._options = ort.RunOptions()
        self._options.add_run_config_entry(NO_SYNC, "1")
        self._ring: list[_Queued] = []
        self._next = 0
        self.broken = ""
        #: Boards that took a queued run's maps (for the tests and the log).
        self.taken = 0
        shape, n = slot.output_shape, int(np.prod(slot.output_shape))
        for _ in range(RING):
            cls_ptr, cls = memory.pinned(np.uint8, n)
            score_ptr, score = memory.pinned(slot.score_dtype.type, n)
            cls, score = cls.reshape(shape), score.reshape(shape)
            event = _event(stack)
            self._ring.append(_Queued(None, -1, cls, score, cls_ptr, score_ptr, event))

    def drain(self) -> None:
        """Wait for every queued run: the slot's buffers are then the host's to overwrite."""
        try:
            self._memory.stream.synchronize()
        except CudaError as err:
            msg = f"the network's run on the device failed: {err}"
            raise InferenceError(msg) from err

    def detach(self) -> None:
        """Stop serving the slot (another slot is chained now)."""
        self._slot.queued = None
        self.broken = "another slot is chained"

    def queue(self, image: np.ndarray) -> None:
        """Queue the network's run for ``image`` behind the registration already queued; the
        caller holds the frame's lock and the device lock. A failure is logged once and turns
        chaining off (every board then runs the ordinary way)."""
        if self.broken:
            return
        entry = self._ring[self._next]
        entry.frame = None  # until queued whole
        slot, rt, stream = self._slot, cudart(), self._memory.stream.handle
        d2h = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        try:
            self._affine(self._memory.driver_stream)
            slot.session.run_with_iobinding(slot.binding, self._options)
            for host, value, array in (
                (entry.cls_ptr, slot.cls, entry.cls),
                (entry.score_ptr, slot.score, entry.score),
            ):
                call("cudaMemcpyAsync", host, value.data_ptr(), array.nbytes, d2h, stream)
            call("cudaEventRecord", entry.event, stream)
        except (CudaError, *ORT_ERRORS) as err:
            self.broken = str(err)
            log.warning("the network no longer runs behind registration: %s", err)
            return
        entry.frame, entry.references = image, slot.reference_uploads
        self._next = (self._next + 1) % RING

    def take(self, batch: FrameBatch) -> ClassMaps | None:
        """The maps of the run queued for ``batch`` (waited for), or None where none was queued
        for it or the slot's reference changed since; the caller holds the slot's locks."""
        if not batch.registered:
            return None
        entry = next((e for e in self._ring if e.frame is batch.frame), None)
        if entry is None:
            return None
        entry.frame = None
        slot = self._slot
        if entry.references != slot.reference_uploads or not slot.reference_fits(batch):
            return None
        try:
            call("cudaEventSynchronize", entry.event)
        except CudaError as err:
            msg = f"the network's run on the device failed: {err}"
            raise InferenceError(msg) from err
        self.taken += 1
        return ClassMaps(entry.cls.copy(), entry.score.copy())


class Chain:
    """Registration's side of the chain: the slot whose runs its kernels queue (the latest
    one the network built on their frame buffer), and the event that ends their own work."""

    def __init__(self, memory: DeviceMemory, stack: ExitStack, affine_out: Any, est: int) -> None:
        self._memory = memory
        self._stack = stack
        self._affine_out = affine_out
        self._est = est
        self.runs: ChainedRuns | None = None
        self._done: Any = None

    def offer(self, shared: SharedFrame) -> None:
        """Let the network build its slot for ``shared`` on the kernels' stream and chain it."""
        shared.stream = self._memory.stream.handle_int
        shared.on_slot = self.attach

    @property
    def queues(self) -> bool:
        """Whether a frame's registration queues its network's run."""
        return self.runs is not None and not self.runs.broken

    def attach(self, slot: FrameSlot) -> None:
        """Queue ``slot``'s runs from now on (called under the frame's and the device's locks
        when the network builds a slot on the kernels' stream)."""
        try:
            if self._done is None:
                self._done = _event(self._stack)
            runs = ChainedRuns(self._memory, self._stack, slot, self._affine_out, self._est)
        except CudaError as err:
            log.warning("the network's runs are not queued behind registration: %s", err)
            return
        if self.runs is not None:
            self.runs.detach()
        self.runs, slot.queued = runs, runs
        log.info("the network's runs for %s are queued behind registration", slot.frame.shape)

    def drain(self) -> None:
        """Wait for every queued run (before the sessions they run go away); a failed device
        is logged, as the kernels are closing anyway."""
        try:
            self._memory.stream.synchronize()
        except CudaError as err:
            log.warning("the registration kernels' stream failed while closing: %s", err)

    def run(self, step: Step, image: np.ndarray) -> None:
        """Queue ``step`` (registration), then the network's run for ``image``; wait for the
        step alone. The caller holds the device lock."""
        assert self.runs is not None
        step.queue()
        call("cudaEventRecord", self._done, self._memory.stream.handle)
        self.runs.queue(image)
        call("cudaEventSynchronize", self._done)


def _event(stack: ExitStack) -> Any:
    """A CUDA event without timing, destroyed with ``stack``."""
    event = call("cudaEventCreateWithFlags", cudart().cudaEventDisableTiming)
    stack.callback(call, "cudaEventDestroy", event)
    return event
