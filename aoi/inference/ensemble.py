"""Several defect models behind one backend: a recipe's ``[model] ensemble``.

The first model is the backend the cycle knows (``predict`` is its own); the further ones are
``members``, which :class:`aoi.vision.multiscale.ScaleReader` runs on every board at every scale
and whose candidates it fuses with the first model's. All are the same kind of backend, opened
for the same recipe profile, and closed together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import ExitStack
from types import TracebackType

import numpy as np

from aoi.inference.base import InferenceBackend
from aoi.types import ClassMaps


def one_backend(backends: Sequence[InferenceBackend]) -> InferenceBackend:
    """What a recipe's cycle runs on (not yet entered): its only model's backend, or all of
    them as an :class:`Ensemble` (``backends`` in the recipe's order, ``model.path`` first)."""
    return backends[0] if len(backends) == 1 else Ensemble(backends[0], backends[1:])


class Ensemble:
    """The first backend, with the others as ``members``."""

    def __init__(self, first: InferenceBackend, others: Sequence[InferenceBackend]) -> None:
        self.first = first
        self.members = tuple(others)
        self.name = first.name
        self._stack: ExitStack | None = None

    @property
    def model_hash(self) -> str:
        """One digest of every model's, in order (each backend knows its own once entered)."""
        hashes = [self.first.model_hash, *(m.model_hash for m in self.members)]
        return hashlib.sha256("+".join(hashes).encode()).hexdigest()

    @property
    def warps_on_device(self) -> bool:
        return self.first.warps_on_device

    def __enter__(self) -> Ensemble:
        with ExitStack() as stack:
            stack.enter_context(self.first)
            for member in self.members:
                stack.enter_context(member)
            self._stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def predict(
        self, batch: np.ndarray, affine: np.ndarray | None = None
    ) -> np.ndarray | ClassMaps:
        if affine is None:
            return self.first.predict(batch)
        return self.first.predict(batch, affine)
