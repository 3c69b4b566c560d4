"""INT8 calibration data as the engine builder takes it: an identity and batches on demand.

The builder does not know where calibration batches come from. The app layer
(:mod:`aoi.app.calibration`) makes them from the recipe's ``model.calibration_dir`` exactly as the
cycle makes its network inputs, and hands over a :class:`CalibrationData`: the digest of what the
batches are made from (part of the engine key and the calibration cache's name) and a callable
that makes the batches. The digest is cheap (file hashes); the batches are not (every image is
registered), so they are made only when an INT8 engine is built without a calibration cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from aoi.errors import FrameError, RecipeError
from aoi.inference.tensorrt.plan import Shape4, dims_text
from aoi.recipe import LoadedRecipe

#: Fewer usable calibration batches than this make scales that depend on a handful of boards.
MIN_CALIBRATION_BATCHES = 8


def _no_summary() -> str:
    return ""


@dataclass(frozen=True)
class CalibrationData:
    """One recipe's INT8 calibration data: what identifies it, and its batches on demand."""

    #: SHA-256 of everything the batches are made from. It is part of the engine key and names
    #: the calibration cache, so other data means another engine and fresh scales.
    digest: str
    #: Makes the uint8 ``[N, 2, H, W]`` batches, each of :func:`plan.calibration_shape`. Called
    #: only when an INT8 engine is built and no calibration cache holds the scales.
    batches: Callable[[], Iterable[np.ndarray]]
    #: Where the batches come from, at the start of messages (``board.toml:
    #: model.calibration_dir /data/calib``).
    origin: str
    #: Once the batches are used up: a phrase that follows "N batches" in messages, saying what
    #: they were made from (``from 40 usable image(s), 1 skipped, 3 tile(s) left over``).
    summary: Callable[[], str] = field(default=_no_summary)


#: What the builder is given to get a recipe's calibration data; called only for INT8 recipes.
CalibrationProvider = Callable[[LoadedRecipe], CalibrationData]


@dataclass
class FedCount:
    """How many calibration batches went to the calibrator."""

    batches: int = 0


def checked_batches(data: CalibrationData, shape: Shape4, fed: FedCount) -> Iterator[np.ndarray]:
    """``data``'s batches, each checked to be uint8 of exactly ``shape`` and counted in ``fed``.

    A generator: ``data.batches`` is first called when the calibrator asks for a batch, so a
    build that takes its scales from the calibration cache makes none.
    """
    source = iter(data.batches())
    try:
        for batch in source:
            if batch.dtype != np.uint8 or tuple(batch.shape) != shape:
                msg = (
                    f"{data.origin}: calibration batch {batch.dtype} {dims_text(batch.shape)} "
                    f"must be uint8 {dims_text(shape)}"
                )
                raise FrameError(msg)
            fed.batches += 1
            yield np.ascontiguousarray(batch)
    finally:
        # The builder may stop early (a failure, or scales from the cache): let the maker's
        # generator release what it holds now rather than when collected.
        close = getattr(source, "close", None)
        if close is not None:
            close()


def check_enough(data: CalibrationData, fed: FedCount) -> None:
    """:class:`RecipeError` when calibration had too few batches for its scales to be trusted."""
    if fed.batches < MIN_CALIBRATION_BATCHES:
        summary = data.summary()
        msg = (
            f"{data.origin} must give at least {MIN_CALIBRATION_BATCHES} calibration batches, "
            f"found {fed.batches}{' ' + summary if summary else ''}"
        )
        raise RecipeError(msg)
