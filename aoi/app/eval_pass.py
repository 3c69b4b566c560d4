"""One network pass per pair for ``aoi eval``, postprocessed twice: as deployed and for the curves.

The deployed pipeline (the recipe as the station runs it) inspects the pair and runs the network;
its backend keeps each batch and output. The curve pipeline (every class's review band widened
down to ``CURVE_FLOOR``) then inspects the same pair through the same :class:`Pipeline` code,
but its backend hands back the kept outputs instead of running the network again. Both results
therefore come from :meth:`Pipeline.inspect` itself: the deployed one is exactly what the station
reports, and the curve one differs only by its postprocessing thresholds.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import numpy as np

from aoi.errors import AoiError
from aoi.inference.base import InferenceBackend
from aoi.pipeline import InspectionIds, Pipeline
from aoi.recipe import LoadedRecipe
from aoi.types import ClassMaps, Frame, InspectionResult

log = logging.getLogger(__name__)

#: A network input batch, its device warp (None: none), and what the network answered for it.
_Kept = tuple[np.ndarray, "np.ndarray | None", "np.ndarray | ClassMaps"]
#: What a backend's ``predict`` returns.
_Output = np.ndarray | ClassMaps


class _Stand:
    """What both stand-in backends share: the real backend's identity, the kept batches and
    outputs, and a context that opens nothing (the rig owns the real backend)."""

    def __init__(self, inner: InferenceBackend, kept: deque[_Kept]) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_hash = inner.model_hash
        self.warps_on_device = getattr(inner, "warps_on_device", False)
        self.kept = kept
        #: An ensemble's further models (aoi/inference/ensemble.py), kept and replayed as well.
        self.members = tuple(type(self)(m, kept) for m in getattr(inner, "members", ()))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class _Recording(_Stand):
    """The deployed pipeline's backend: runs the rig's network and keeps each batch and output."""

    def __init__(self, inner: InferenceBackend, kept: deque[_Kept]) -> None:
        super().__init__(inner, kept)
        self.calls = 0

    def predict(self, batch: np.ndarray, affine: np.ndarray | None = None) -> _Output:
        extra = () if affine is None else (affine,)
        out = self.inner.predict(batch, *extra)
        self.calls += 1
        # The batch may be a buffer the input builder reuses: keep a copy to compare against.
        self.kept.append((batch.copy(), None if affine is None else affine.copy(), out))
        return out


class _Replay(_Stand):
    """The curve pipeline's backend: the deployed pass's outputs, in order, without the network.

    Each batch must equal the one the deployed pass fed the network (both pipelines build it
    from the same pair with the same geometry); anything else is a bug, never a silent mix-up.
    """

    def predict(self, batch: np.ndarray, affine: np.ndarray | None = None) -> _Output:
        if not self.kept:
            msg = "the curve pass asked for a network output the deployed pass did not make"
            raise AoiError(msg)
        seen, warp, out = self.kept.popleft()
        same_warp = (warp is None) == (affine is None) and (
            warp is None or np.array_equal(warp, affine)
        )
        if seen.shape != batch.shape or not np.array_equal(seen, batch) or not same_warp:
            msg = (
                f"the curve pass built another network input ({list(batch.shape)}) than the "
                f"deployed pass ({list(seen.shape)})"
            )
            raise AoiError(msg)
        return out


@dataclass(frozen=True)
class PairResults:
    """One pair's two readings of the same network output."""

    deployed: InspectionResult
    curves: InspectionResult


class OnePass:
    """Inspects pairs with one network pass each, read as deployed and with the curve floor."""

    def __init__(
        self,
        backend: InferenceBackend,
        template: np.ndarray,
        deployed: LoadedRecipe,
        curves: LoadedRecipe,
        ids: InspectionIds | None = None,
    ) -> None:
        self._kept: deque[_Kept] = deque()
        self.network = _Recording(backend, self._kept)
        ids = ids or InspectionIds()
        self.deployed = Pipeline(deployed, self.network, template=template, ids=ids)  # type: ignore[arg-type]
        replay = _Replay(backend, self._kept)
        self.curves = Pipeline(curves, replay, template=template, ids=ids)  # type: ignore[arg-type]
        #: The curve recipe ranks alternates, which only the network's full maps hold.
        self._alternates = curves.recipe.model.alternates
        self._curve_path = curves.path

    def inspect(self, frame: Frame) -> PairResults:
        """The pair as the station reports it, and the same network output at the curve floor."""
        self._kept.clear()  # a failed pair before must not leave its outputs for this one
        deployed = self.deployed.inspect(frame)
        if deployed.error:
            return PairResults(deployed, deployed)
        if self._alternates and any(isinstance(out, ClassMaps) for *_, out in self._kept):
            msg = (
                f"{self._curve_path}: [model] alternates needs the network's full maps, and "
                f"backend {self.network.name} reduces them on the device: evaluate with "
                "--backend onnxruntime"
            )
            raise AoiError(msg)
        curves = self.curves.inspect(frame)
        if self._kept:
            msg = f"{frame.name}: the curve pass left {len(self._kept)} network output(s) unread"
            raise AoiError(msg)
        return PairResults(deployed, curves)
