"""SIGINT and SIGTERM as a stop request: systemd and Ctrl-C end a run after the board in flight."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_signals(stop: threading.Event, who: str, what: str) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` inside the block (and say so on stderr); the previous
    handlers come back after it. The handler only sets an event: the main thread does the rest."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        print(f"[{who}] {signal.Signals(signum).name}: {what}", file=sys.stderr, flush=True)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
