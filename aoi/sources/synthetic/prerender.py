"""A synthetic camera that renders its boards once and replays them: for throughput benches.

Rendering a board in Python costs 8-15 ms (docs/benchmarks.md, issue 15 second round); a bench
whose source renders each board measures the generator, not the station. This source renders
``count`` boards when opened (before any clock starts) and hands them out in turn, each grab
as a new frame (its own id, name and availability time), so a camera's cost of a frame is
only the handing over.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from types import TracebackType

import numpy as np

from aoi.errors import SourceError
from aoi.framemem import HEAP, FrameMemory
from aoi.sources.synthetic.source import SyntheticSource
from aoi.types import Frame

log = logging.getLogger(__name__)


class PrerenderedSource:
    """Replays ``count`` boards of ``inner`` (a :class:`SyntheticSource`) in a loop."""

    name = "synthetic"
    warnings: tuple[str, ...] = ()

    def __init__(self, inner: SyntheticSource, count: int, memory: FrameMemory = HEAP) -> None:
        if count < 1:
            msg = f"prerender needs at least one board, got {count}"
            raise ValueError(msg)
        self._inner = inner
        self.count = count
        self._memory = memory
        self._frames: list[Frame] = []
        self._next_id = 0

    def __enter__(self) -> PrerenderedSource:
        with self._inner:
            t0 = time.perf_counter()
            self._frames = [self._stored(self._inner.grab()) for _ in range(self.count)]
        log.info("%d synthetic boards rendered in %.1f s", self.count, time.perf_counter() - t0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._frames = []

    def _stored(self, frame: Frame) -> Frame:
        """``frame`` with its pixels in this source's frame memory (copied once, here)."""
        image = self._memory.empty(frame.image.shape, frame.image.dtype)
        np.copyto(image, frame.image)
        return replace(frame, image=image)

    def describe(self) -> str:
        """What the camera light says."""
        return f"{self._inner.describe()} ({self.count} replayed)"

    def grab(self, timeout_s: float = 1.0) -> Frame:  # noqa: ARG002 - replay never waits
        """The next stored board, as a new frame available now."""
        if not self._frames:
            msg = "synthetic source is not open: use it as a context manager (with source: ...)"
            raise SourceError(msg)
        frame_id = self._next_id
        self._next_id += 1
        stored = self._frames[frame_id % self.count]
        return replace(
            stored,
            frame_id=frame_id,
            available_ns=time.perf_counter_ns(),
            name=f"synthetic-{frame_id:06d}",
        )
