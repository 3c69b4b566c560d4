"""A free-running cycle loop that overlaps boards: board N+1 is grabbed and registered while
board N is in inference and postprocessing; verdicts leave in order.

Only for a station without a trigger source (``aoi bench``): with a PLC one trigger is one
result, so the next board cannot be grabbed before the current one is answered. The first half
(:meth:`aoi.pipeline.Pipeline.prepare`) runs on a helper thread, the second half
(:meth:`aoi.pipeline.Pipeline.complete`: sinks, ids, events) on the caller's thread, so
everything that orders results stays on one thread. OpenCV and the inference runtimes release
the GIL, which is what lets the halves overlap.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from aoi.errors import FrameError, SourceError, SourceExhausted
from aoi.pipeline import (
    UNEXPECTED,
    Pipeline,
    Staged,
    _message,
    error_kind_of,
    internal_message,
)
from aoi.sources.base import ImageSource
from aoi.stats import RunStats
from aoi.types import ErrorKind, InspectionResult

log = logging.getLogger(__name__)

#: Boards grabbed ahead of the one being completed: one is enough to hide registration, and
#: each more adds a whole cycle of waiting to every board's latency.
_AHEAD = 1

#: What the helper thread hands over: a prepared board, a failed grab, or the source's end.
_Item = Staged | tuple[ErrorKind, str] | None


def _producer(
    pipeline: Pipeline,
    source: ImageSource,
    out: queue.Queue[_Item],
    slots: threading.Semaphore,
    cycles: int | None,
    grab_timeout_s: float,
    halt: threading.Event,
) -> None:
    """Grab and prepare boards until ``cycles``, the source's end or ``halt``."""
    made = 0
    try:
        while (cycles is None or made < cycles) and not halt.is_set():
            # Grab only when the consumer has taken the last board: a board grabbed earlier
            # would wait in the queue, and its cycle time (latency) counts from its grab.
            if not slots.acquire(timeout=0.1):
                continue
            item: _Item
            try:
                frame = source.grab(grab_timeout_s)
            except SourceExhausted:
                break
            except (SourceError, FrameError) as err:
                item = (error_kind_of(err), _message(err))
            except ValueError as err:  # a Frame that refused what the source handed it
                item = (ErrorKind.BAD_FRAME, _message(err))
            except UNEXPECTED as err:
                log.exception("the source raised an unexpected error")
                item = (ErrorKind.INTERNAL, internal_message(err))
            else:
                item = pipeline.prepare(frame)
            out.put(item)
            made += 1
    finally:
        # The consumer always learns the stream ended (also when the thread fails).
        out.put(None)


def run_pipelined(
    pipeline: Pipeline,
    source: ImageSource,
    *,
    cycles: int | None,
    grab_timeout_s: float = 2.0,
    stop: threading.Event | None = None,
    on_result: Callable[[InspectionResult], None] | None = None,
) -> RunStats:
    """Like :func:`aoi.pipeline.run_cycles` without triggers, with boards overlapped."""
    stats = RunStats(budget_ms=pipeline.recipe.cycle_budget_ms)
    boards: queue.Queue[_Item] = queue.Queue()
    slots = threading.Semaphore(_AHEAD)
    halt = threading.Event()
    helper = threading.Thread(
        target=_producer,
        args=(pipeline, source, boards, slots, cycles, grab_timeout_s, halt),
        name="aoi-prepare",
        daemon=True,
    )
    helper.start()
    try:
        while stop is None or not stop.is_set():
            try:
                item = boards.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                break
            slots.release()  # the helper grabs the next board while this one completes
            if isinstance(item, Staged):
                result = pipeline.complete(item)
            else:
                result = pipeline.error_result(*item)
            stats.add(result)
            if on_result is not None:
                on_result(result)
    finally:
        halt.set()
        helper.join()
    return stats
