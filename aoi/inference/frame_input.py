"""The frame uploaded once: a whole-frame recipe's network reads the frame registration uploaded.

On the CUDA path with registration and the warp on the device, a whole-frame board went to the
GPU twice and the template with it every time: registration uploaded the frame
(aoi/inference/devreg.py), then the host copied it into a padded ``[1, 2, H, W]`` batch beside
the template (1.7 ms at 4096x3000) and uploaded all of it (24.6 MB) for the network. Here the
network's graph (``warp_model(frame=True)``) takes the frame as the camera gave it and the
template side as a separate input: the template is uploaded when its pixels change (a version
number, :class:`aoi.types.FrameBatch`), and the frame is bound to registration's own device
buffer. A board whose frame registration did not just upload (a DeepPCB pair, a frame
registered on the CPU, another board's registration in between) is uploaded into that buffer
first, under registration's lock, so the network never reads another board's pixels: the
buffer is trusted only for a frame that went through registration (``FrameBatch.registered``)
and is the very array registration uploaded last, not yet used by a network run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np
import onnxruntime as ort

from aoi.errors import InferenceError, ModelError
from aoi.inference.base import CLASS_NAME, SCORE_NAME
from aoi.inference.warp import AFFINE_NAME, FRAME_NAME, REFERENCE_NAME, device_affine
from aoi.types import ClassMaps, FrameBatch

if TYPE_CHECKING:
    import onnx


class SharedFrame:
    """A device buffer holding one uint8 ``[h, w]`` frame, shared by registration's graphs and
    the network's, with a record of which host frame it holds.

    ``lock`` is held while the buffer's content matters (a registration, a network run);
    :meth:`upload` is called with it held. ``held`` is the host array last uploaded, until a
    network run has used it (:meth:`release`): an identity, not a comparison of pixels, so a
    camera that reuses its buffers cannot make a later board match a stale upload.
    """

    def __init__(self, shape: tuple[int, int], device: str) -> None:
        self.shape = shape
        self.device = device
        self.value = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.uint8, device, 0)
        self.lock = threading.Lock()
        self._held: np.ndarray | None = None
        #: The stream of the registration kernels that fill the buffer (``cudaStream_t`` as an
        #: int), and what they do with a slot built on it (aoi/inference/chain.py: True where
        #: they took it; with ``capture``, its session has no graph of its own); None for a
        #: buffer no kernels fill.
        self.stream: int | None = None
        self.on_slot: Callable[[FrameSlot, bool], bool] | None = None

    def upload(self, image: np.ndarray, copy: Callable[[np.ndarray], None] | None = None) -> None:
        """Copy ``image`` (uint8 ``shape``) to the device, with ``copy`` where given (the
        registration kernels copy on their stream); the caller holds :attr:`lock`."""
        if image.shape != self.shape or image.dtype != np.uint8:
            msg = f"the device frame is a uint8 {self.shape}, got {image.dtype} {image.shape}"
            raise InferenceError(msg)
        self._held = None
        data = np.ascontiguousarray(image)
        if copy is None:
            self.value.update_inplace(data)
        else:
            copy(data)
        self._held = image

    def holds(self, image: np.ndarray) -> bool:
        """Whether the buffer holds ``image`` (the very array last uploaded, not yet used)."""
        return self._held is image

    def release(self) -> None:
        """Forget which frame the buffer holds: the next board uploads its own."""
        self._held = None


def fixed_inputs(model: onnx.ModelProto, sizes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs named in ``sizes`` (those it has) get those concrete
    sizes, so every shape folds away and ORT can capture the run as a CUDA graph."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for inp in out.graph.input:
        if inp.name in sizes:
            dims = inp.type.tensor_type.shape.dim
            if len(dims) != len(sizes[inp.name]):
                msg = f"input {inp.name!r} has {len(dims)} dimensions, not {len(sizes[inp.name])}"
                raise ModelError(msg)
            for dim, size in zip(dims, sizes[inp.name], strict=True):
                dim.Clear()
                dim.dim_value = int(size)
    return out


def fixed_frame_shape(
    model: onnx.ModelProto, frame_hw: tuple[int, int], input_hw: tuple[int, int]
) -> onnx.ModelProto:
    """A copy of a frame-taking model with concrete ``frame`` and ``reference`` sizes."""
    sizes = {FRAME_NAME: frame_hw, REFERENCE_NAME: (1, 1, *input_hw), AFFINE_NAME: (1, 2, 3)}
    return fixed_inputs(model, sizes)


class Queued(Protocol):
    """Network runs queued ahead of :meth:`FrameSlot.run` (aoi/inference/chain.py)."""

    def take(self, batch: FrameBatch) -> ClassMaps | None:
        """The maps of the run queued for ``batch``, or None where none is."""

    def drain(self) -> None:
        """Wait for every queued run (before the host writes the slot's buffers)."""


class FrameSlot:
    """One frame size's session and bound buffers: the frame (shared or its own), the
    reference (uploaded when its version changes), the affine map, and the reduced maps."""

    def __init__(
        self,
        session: ort.InferenceSession,
        frame: SharedFrame,
        input_hw: tuple[int, int],
        output_shape: tuple[int, ...],
        score_dtype: np.dtype,
    ) -> None:
        new = ort.OrtValue.ortvalue_from_shape_and_type
        self.session = session
        self.frame = frame
        self.input_hw = input_hw
        self.output_shape = tuple(int(n) for n in output_shape)
        self.score_dtype = np.dtype(score_dtype)
        #: Runs queued by registration (aoi/inference/chain.py), where the frame's kernels
        #: chain this slot; ``reference_uploads`` counts reference uploads, for them.
        self.queued: Queued | None = None
        self.reference_uploads = 0
        self.reference = new((1, 1, *input_hw), np.uint8, frame.device, 0)
        self._reference_of: tuple[np.ndarray, int] | None = None
        self.affine = new((1, 2, 3), np.float32, frame.device, 0)
        self.cls = new(output_shape, np.uint8, frame.device, 0)
        self.score = new(output_shape, score_dtype.type, frame.device, 0)
        self.binding = session.io_binding()
        self.binding.bind_ortvalue_input(FRAME_NAME, frame.value)
        self.binding.bind_ortvalue_input(REFERENCE_NAME, self.reference)
        self.binding.bind_ortvalue_input(AFFINE_NAME, self.affine)
        self.binding.bind_ortvalue_output(CLASS_NAME, self.cls)
        self.binding.bind_ortvalue_output(SCORE_NAME, self.score)

    def _reference_key(self, batch: FrameBatch) -> tuple[np.ndarray, int]:
        """What names ``batch``'s reference pixels: the builder's buffer (kept alive here) and
        its count."""
        source = batch.reference if batch.reference.base is None else batch.reference.base
        return source, batch.reference_version

    def reference_fits(self, batch: FrameBatch) -> bool:
        """Whether the device's reference holds ``batch``'s."""
        held, (source, version) = self._reference_of, self._reference_key(batch)
        return held is not None and held[0] is source and held[1] == version

    def run(self, batch: FrameBatch, affine: np.ndarray | None) -> ClassMaps:
        """The reduced maps of ``batch``; ``affine`` is normalised to the frame's size (None:
        the identity). The caller holds the frame's lock, then the device lock (the order
        registration takes them in)."""
        if batch.reference.shape[2:] != self.input_hw:
            msg = f"reference {list(batch.reference.shape)} does not fit this slot {self.input_hw}"
            raise InferenceError(msg)
        if self.queued is not None:  # registration queued this board's run: its maps
            taken = self.queued.take(batch)
            if taken is not None:
                if self.frame.holds(batch.frame):
                    self.frame.release()
                return taken
            self.queued.drain()  # a later board's run may still read the buffers written here
        h, w = self.frame.shape
        maps = device_affine(None, h, w)[None] if affine is None else affine
        self.affine.update_inplace(np.ascontiguousarray(maps, np.float32).reshape(1, 2, 3))
        if not self.reference_fits(batch):
            self.reference.update_inplace(np.ascontiguousarray(batch.reference))
            self._reference_of = self._reference_key(batch)
            self.reference_uploads += 1
        if not (batch.registered and self.frame.holds(batch.frame)):
            self.frame.upload(batch.frame)
        self.session.run_with_iobinding(self.binding)
        self.frame.release()
        cls, score = self.cls.numpy(), self.score.numpy()
        if self.frame.device == "cpu":  # views of the bound buffers there: the next run's
            cls, score = cls.copy(), score.copy()
        return ClassMaps(cls, score)
