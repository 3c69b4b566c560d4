"""The soft PLC's runner: its program on a thread, scanning over a register peer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from plc.errors import PlcLinkError
from plc.peer import Backoff, RegisterPeer
from plc.registers import RegisterMap, decode_station, encode_plc
from plc.softplc.program import SoftPlcLogic
from plc.softplc.report import SimReport

log = logging.getLogger(__name__)


class SoftPlc:
    """Runs :class:`SoftPlcLogic` on a thread over ``peer``, one scan every ``scan_s``."""

    def __init__(
        self,
        peer: RegisterPeer,
        layout: RegisterMap,
        logic: SoftPlcLogic,
        *,
        scan_s: float = 0.005,
        reconnect_max_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peer = peer
        self.layout = layout
        self.logic = logic
        self.scan_s = scan_s
        self._clock = clock
        self._backoff = Backoff(min(0.05, reconnect_max_s), reconnect_max_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._written: list[int] | None = None
        self._was_connected = False

    def __enter__(self) -> SoftPlc:
        self._thread = threading.Thread(target=self._run, name="soft-plc", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    @property
    def report(self) -> SimReport:
        return self.logic.report

    def finish(self, timeout_s: float) -> bool:
        """Start no new part, let the one in flight complete; True if done within the time."""
        with self._lock:
            self.logic.stop_requested = True
        return self._done.wait(timeout_s)

    def wait_done(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)

    def freeze_heartbeat(self, frozen: bool = True) -> None:
        with self._lock:
            self.logic.heartbeat_frozen = frozen

    def _run(self) -> None:
        station_block = self.layout.station_block
        while not self._stop.is_set():
            try:
                if not self.peer.connected:
                    self.peer.connect()
                    self._backoff.succeeded()
                    self._written = None
                    self._was_connected = True
                station = decode_station(self.layout, self.peer.read(station_block))
                with self._lock:
                    self.logic.scan(station, self._clock())
                    words = encode_plc(self.layout, self.logic.inputs)
                if words != self._written:
                    self.peer.write(self.layout.plc_block.start, words)
                    self._written = words
            except PlcLinkError as err:
                self.peer.disconnect()
                delay = self._backoff.failed()
                if self._was_connected:
                    self._was_connected = False
                    self.logic.report.link_drops += 1
                log.info("soft PLC: %s; retrying in %.2f s", err, delay)
                with self._lock:
                    self.logic.scan(None, self._clock())
                if self.logic.done:
                    self._done.set()
                self._stop.wait(delay)
                continue
            if self.logic.done:
                self._done.set()
            self._stop.wait(self.scan_s)
