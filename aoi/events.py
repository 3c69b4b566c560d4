"""Fan-out of inspection results to subscribers, off the critical path.

Each subscriber (storage, archive, GUI) gets its own bounded queue and thread, so a slow one can
neither stall the cycle nor another subscriber. ``publish`` never blocks: when a subscriber's
queue is full the result is counted as dropped for it and an alarm is logged; subscribers that
must not lose records (the storage writer) keep their own journal behind their callback.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from aoi.errors import AoiError
from aoi.types import InspectionResult

log = logging.getLogger(__name__)

Subscriber = Callable[[InspectionResult], None]

_STOP = object()

#: Failures a subscriber may raise and delivery survives (counted, logged). Anything else is a
#: bug: it ends that subscriber's thread, which ``alive`` then reports.
SUBSCRIBER_ERRORS: tuple[type[Exception], ...] = (AoiError, OSError, ValueError, RuntimeError)


@dataclass
class _Channel:
    name: str
    callback: Subscriber
    queue: queue.Queue[object]
    thread: threading.Thread | None = None
    delivered: int = 0
    dropped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class EventBus:
    """Delivers every published result to every subscriber on the subscriber's own thread."""

    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self._channels: list[_Channel] = []
        self._started = False

    def subscribe(self, name: str, callback: Subscriber) -> None:
        if self._started:
            msg = f"subscribe({name!r}) must come before the bus starts"
            raise RuntimeError(msg)
        self._channels.append(_Channel(name, callback, queue.Queue(self.queue_size)))

    def __enter__(self) -> EventBus:
        for ch in self._channels:
            ch.thread = threading.Thread(
                target=self._serve, args=(ch,), name=f"aoi-events-{ch.name}", daemon=True
            )
            ch.thread.start()
        self._started = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for ch in self._channels:
            if ch.thread is not None and ch.thread.is_alive():
                ch.queue.put(_STOP)  # waits only while full: the subscriber drains first
        for ch in self._channels:
            if ch.thread is not None:
                ch.thread.join()
        self._started = False

    def publish(self, result: InspectionResult) -> None:
        """Queue ``result`` for every subscriber without waiting."""
        for ch in self._channels:
            try:
                ch.queue.put_nowait(result)
            except queue.Full:
                ch.dropped += 1
                log.warning(
                    "ALARM: subscriber %s is %d results behind; dropped inspection %d",
                    ch.name,
                    self.queue_size,
                    result.inspection_id,
                )

    def _serve(self, ch: _Channel) -> None:
        while True:
            item = ch.queue.get()
            if item is _STOP:
                return
            assert isinstance(item, InspectionResult)
            try:
                ch.callback(item)
            except SUBSCRIBER_ERRORS as err:
                ch.failed += 1
                if len(ch.errors) < 10:
                    ch.errors.append(repr(err))
                log.exception("subscriber %s failed on inspection %d", ch.name, item.inspection_id)
            else:
                ch.delivered += 1

    def alive(self) -> dict[str, bool]:
        """Whether each subscriber's thread is still serving."""
        return {ch.name: ch.thread is not None and ch.thread.is_alive() for ch in self._channels}

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            ch.name: {"delivered": ch.delivered, "dropped": ch.dropped, "failed": ch.failed}
            for ch in self._channels
        }
