"""A free-running cycle loop that overlaps boards: board N+1 is grabbed and registered while
board N is in inference and postprocessing; verdicts leave in order.

Only for a station without a trigger source (``aoi bench``): with a PLC one trigger is one
result, so the next board cannot be grabbed before the current one is answered. Boards are grabbed
in order on a helper thread; their first half (:meth:`aoi.pipeline.Pipeline.prepare`: register)
runs on ``workers`` threads (two boards at once when registration runs on the CPU, one when it
runs on the inference device, whose work is serialised anyway); the second half
(:meth:`aoi.pipeline.Pipeline.complete`: sinks, ids, events) on the caller's thread, so
everything that orders results stays on one thread. OpenCV and the inference runtimes release
the GIL, which is what lets the halves overlap.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from aoi.errors import SourceExhausted
from aoi.pipeline import Pipeline, Staged, grab_frame
from aoi.sources.base import ImageSource
from aoi.stats import RunStats
from aoi.types import ErrorKind, Frame, InspectionResult

log = logging.getLogger(__name__)

#: Registration threads: one board's registration (~3-4 ms at 640 on the H200's host) is longer
#: than the rest of its cycle once the warp is on the device, so one thread would cap the loop.
WORKERS = 2

#: What the helper thread hands over: a prepared board or a failed grab (the source's end: None).
_Item = Staged | tuple[ErrorKind, str]


def _done(item: _Item) -> Future[_Item]:
    future: Future[_Item] = Future()
    future.set_result(item)
    return future


def _producer(
    pipeline: Pipeline,
    source: ImageSource,
    out: queue.Queue[Future[_Item] | None],
    slots: threading.Semaphore,
    cycles: int | None,
    grab_timeout_s: float,
    halt: threading.Event,
    pool: ThreadPoolExecutor,
) -> None:
    """Grab boards in order and have ``pool`` prepare them until ``cycles``, the source's end
    or ``halt``; the futures go out in grab order, which is the order results leave in."""
    made = 0
    try:
        while (cycles is None or made < cycles) and not halt.is_set():
            # Grab only while fewer than ``workers`` boards wait: a board grabbed earlier would
            # wait in the queue, and its cycle time (latency) counts from its grab.
            if not slots.acquire(timeout=0.1):
                continue
            try:
                got = grab_frame(source, grab_timeout_s)
            except SourceExhausted:
                break
            item = pool.submit(pipeline.prepare, got) if isinstance(got, Frame) else _done(got)
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
    workers: int | None = None,
) -> RunStats:
    """Like :func:`aoi.pipeline.run_cycles` without triggers, with boards overlapped: up to
    ``workers`` boards are grabbed ahead and registered at once while one completes."""
    if workers is None:  # two device users would only queue on the backend's device lock
        workers = WORKERS if pipeline.registrar.steps == "cpu" else 1
    stats = RunStats(budget_ms=pipeline.recipe.cycle_budget_ms)
    boards: queue.Queue[Future[_Item] | None] = queue.Queue()
    slots = threading.Semaphore(workers)
    halt = threading.Event()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aoi-register")
    helper = threading.Thread(
        target=_producer,
        args=(pipeline, source, boards, slots, cycles, grab_timeout_s, halt, pool),
        name="aoi-grab",
        daemon=True,
    )
    helper.start()
    try:
        while stop is None or not stop.is_set():
            try:
                future = boards.get(timeout=0.1)
            except queue.Empty:
                continue
            if future is None:
                break
            item = future.result()  # prepare() answers its failures in the Staged it returns
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
        pool.shutdown(wait=True)
    return stats
