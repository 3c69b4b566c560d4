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

With ``AOI_ORT_CUDA=...,capture`` registration's graph and the network's run are captured
together as one CUDA graph (:meth:`ChainedRuns.capture`; the session then runs without ONNX
Runtime's own graph, as a capture cannot hold another): a board is one launch. It measured the
same as queued within the runs' spread (docs/benchmarks.md, "Issue 15, fourteenth round"), and
it is not the default: it replays whatever ONNX Runtime queued in the one run it captured, and
for some operators ONNX Runtime queues a host callback that frees page-locked staging buffers
once (``cudaLaunchHostFunc``), which a replayed graph would repeat. The network of this repository
queues none (the captured cycle gives the plain cycle's answers on the GPU machine), but a recipe
may name another. Where CUDA or ONNX Runtime refuse the capture, the runs are queued call by call.

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
from aoi.inference.cuda_options import ENV_VAR, CudaOptions
from aoi.inference.kernparts import DeviceMemory, Step
from aoi.inference.ort_cuda import ORT_ERRORS
from aoi.inference.tensorrt.cuda_mem import CapturedGraph, CudaError, call, cudart
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
    #: Registration and this run captured as one CUDA graph (None: queued call by call).
    graph: CapturedGraph | None = None


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

    def _enqueue_network(self, entry: _Queued, capturing: bool = False) -> None:
        """The affine map from the fit, the network's run and its maps' copy into ``entry``."""
        slot, stream = self._slot, self._memory.stream.handle
        d2h = cudart().cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._affine(self._memory.driver_stream)
        slot.session.run_with_iobinding(slot.binding, self._options)
        for host, value, array in (
            (entry.cls_ptr, slot.cls, entry.cls),
            (entry.score_ptr, slot.score, entry.score),
        ):
            call("cudaMemcpyAsync", host, value.data_ptr(), array.nbytes, d2h, stream)
        _record(entry.event, stream, capturing)

    def capture(self, step: Step, done: Any) -> bool:
        """Capture, per ring entry, registration's ``step`` (its end recorded on ``done``) and
        the network's run behind it as one CUDA graph: a board is then one launch. The slot's
        session must run without ONNX Runtime's own graph (a capture cannot hold another).
        False (logged) where CUDA or ONNX Runtime refuse the capture."""
        stream = self._memory.stream.handle

        def enqueue(entry: _Queued) -> bool:
            capturing = _capturing(stream)
            step.enqueue()
            _record(done, stream, capturing)
            self._enqueue_network(entry, capturing)
            return True

        try:
            for entry in self._ring:
                graph = self._memory.graph()
                if not graph.capture(lambda e=entry: enqueue(e)):
                    log.warning("registration and the network could not be captured as one graph")
                    return False
                entry.graph = graph
        except (CudaError, InferenceError, *ORT_ERRORS) as err:
            log.warning("registration and the network could not be captured as one graph: %s", err)
            return False
        return True

    @property
    def captured(self) -> bool:
        return all(entry.graph is not None for entry in self._ring)

    def queue(self, image: np.ndarray) -> bool:
        """Queue the network's run for ``image`` behind the registration already queued, or
        (captured) launch registration and the run as one graph; the caller holds the frame's
        lock and the device lock. False where nothing was queued: a failure is logged once and
        turns chaining off (every board then runs the ordinary way)."""
        if self.broken:
            return False
        entry = self._ring[self._next]
        entry.frame = None  # until queued whole
        try:
            if entry.graph is not None:
                entry.graph.launch()
            else:
                self._enqueue_network(entry)
        except (CudaError, InferenceError, *ORT_ERRORS) as err:
            self.broken = str(err)
            log.warning("the network no longer runs behind registration: %s", err)
            return False
        entry.frame, entry.references = image, self._slot.reference_uploads
        self._next = (self._next + 1) % RING
        return True

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

    def __init__(
        self,
        memory: DeviceMemory,
        stack: ExitStack,
        affine_out: Any,
        est: int,
        step: Step | None = None,
    ) -> None:
        self._memory = memory
        self._stack = stack
        self._affine_out = affine_out
        self._est = est
        #: Registration's whole-fit step, captured with the network where the session allows.
        self._step = step
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

    def attach(self, slot: FrameSlot, capture: bool = False) -> bool:
        """Queue ``slot``'s runs from now on (called under the frame's and the device's locks
        when the network builds a slot on the kernels' stream). With ``capture`` (the slot's
        session has no graph of its own), registration and the network become one CUDA graph,
        or nothing is attached and False returned: the network then builds a slot with ONNX
        Runtime's graph and attaches it without."""
        try:
            if self._done is None:
                self._done = _event(self._stack)
            runs = ChainedRuns(self._memory, self._stack, slot, self._affine_out, self._est)
        except CudaError as err:
            log.warning("the network's runs are not queued behind registration: %s", err)
            return False
        if capture and (self._step is None or not runs.capture(self._step, self._done)):
            return False
        if self.runs is not None:
            self.runs.detach()
        self.runs, slot.queued = runs, runs
        how = "captured with registration as one graph" if capture else "queued behind it"
        log.info("the network's runs for %s are %s", slot.frame.shape, how)
        return True

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
        runs = self.runs
        assert runs is not None
        if not runs.captured:
            step.queue()
            call("cudaEventRecord", self._done, self._memory.stream.handle)
            runs.queue(image)
        elif not runs.queue(image):  # the graph holds the step: without it, the step alone
            step.run()
            return
        call("cudaEventSynchronize", self._done)


def _capturing(stream: Any) -> bool:
    """Whether ``stream`` is being captured into a graph."""
    rt = cudart()
    return (
        call("cudaStreamIsCapturing", stream)
        != rt.cudaStreamCaptureStatus.cudaStreamCaptureStatusNone
    )


def _record(event: Any, stream: Any, capturing: bool) -> None:
    """Record ``event`` on ``stream``; in a capture, as a node of the graph that signals the
    event each time the graph runs (a plain record there only orders the capture's streams)."""
    if capturing:
        flags = cudart().cudaEventRecordExternal
        call("cudaEventRecordWithFlags", event, stream, flags)
    else:
        call("cudaEventRecord", event, stream)


def _event(stack: ExitStack) -> Any:
    """A CUDA event without timing, destroyed with ``stack``."""
    event = call("cudaEventCreateWithFlags", cudart().cudaEventDisableTiming)
    stack.callback(call, "cudaEventDestroy", event)
    return event


def chain_status(options: CudaOptions) -> str:
    """How the network follows the registration kernels, for ``aoi doctor``."""
    if not options.chain:
        return f"{ENV_VAR}=nochain"
    how = "as one graph where CUDA allows" if options.capture else "call by call"
    return f"the network's run queued behind them {how}"
