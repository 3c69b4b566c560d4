"""The station's side of the plant publishers' process (aoi/app/plant/host.py): start, supervise.

:class:`PlantProcess` starts the host (``multiprocessing``, spawn: no thread, lock or library
state of the station is copied into it), waits for it to open its publishers, and keeps one
thread on the pipe: the host's log records go to the station's log, a broker's alarm to the
alarm history, an OPC UA client's recipe change to the station. A host that dies is an alarm
("plant publishers stopped") and is started again with a back-off (1 s doubling to 30 s); its
outboxes go on from their saved positions, so nothing is lost or sent twice. It is also the
station's :class:`~aoi.app.plant.wiring.StateListener`: state changes and alarms are passed on.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from aoi.app.plant.host import HostSettings, host_main
from aoi.errors import AoiError

log = logging.getLogger(__name__)

#: How long the host may take to open its publishers (imports, certificates, connections).
START_TIMEOUT_S = 60.0
RESTART_MAX_S = 30.0

OnAlarm = Callable[[str, str | None], None]
Prepare = Callable[[str, str, str], str]


class PlantError(AoiError):
    """The plant publishers' process could not be started."""


def _refuse(kind: str, external_id: str, who: str) -> str:  # noqa: ARG001
    msg = "this station does not change recipes from the plant"
    raise AoiError(msg)


class PlantProcess:
    """The host process, supervised; a context manager and a state listener."""

    def __init__(
        self,
        settings: HostSettings,
        *,
        on_alarm: OnAlarm | None = None,
        prepare: Prepare = _refuse,
        scale: Callable[[], tuple[str, float | None] | None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_alarm = on_alarm or (lambda _label, _text: None)
        self.prepare = prepare
        #: The active recipe's content hash and scale (sent with each state change).
        self.scale = scale
        self.pid: int | None = None
        self.restarts = 0
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next = 0
        self._replies: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._last_state: dict[str, Any] | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> PlantProcess:
        self._start()
        self._thread = threading.Thread(target=self._listen, name="aoi-plant-host", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._send("stop")
        proc = self._proc
        if proc is not None:
            proc.join(10.0)  # the outboxes finish their batch in flight (the service allows 15 s)
            if proc.is_alive():
                log.warning("plant host %s did not stop in 10 s: terminated", proc.pid)
                proc.terminate()
                proc.join(5.0)
        if self._conn is not None:
            self._conn.close()
        if self._thread is not None:
            self._thread.join(5.0)

    def _start(self) -> None:
        """Start the host and wait for its ``ready`` (raises :class:`PlantError`)."""
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=host_main, args=(theirs, self.settings), name="aoi-plant", daemon=True
        )
        proc.start()
        theirs.close()
        try:
            pid = self._await_ready(ours, proc)
        except PlantError:
            ours.close()
            proc.join(5.0)
            if proc.is_alive():
                proc.terminate()
            raise
        self._proc, self._conn, self.pid = proc, ours, pid
        log.info("plant: publishers running in process %s", self.pid)
        if self._last_state is not None:  # a restarted host learns where the station stands
            self.publish_state(self._last_state)

    def _await_ready(self, ours: Connection, proc: Any) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        while ours.poll(max(0.0, deadline - time.monotonic())):
            try:
                kind, *args = ours.recv()
            except (EOFError, OSError) as err:
                proc.join(5.0)
                msg = f"the plant publishers' process ended at start (exit code {proc.exitcode})"
                raise PlantError(msg) from err
            if kind == "log":
                self._log(*args)
            elif kind == "failed":
                msg = f"the plant publishers could not start: {args[0]}"
                raise PlantError(msg)
            elif kind == "ready":
                return int(args[0])
        msg = f"the plant publishers did not start within {START_TIMEOUT_S:.0f} s"
        raise PlantError(msg)

    # -- the pipe -----------------------------------------------------------------------------

    def _send(self, *message: Any) -> bool:
        with self._send_lock:
            if self._conn is None:
                return False
            try:
                self._conn.send(message)
            except (OSError, ValueError):
                return False
        return True

    def _log(self, level: int, name: str, text: str) -> None:
        logging.getLogger(name).log(level, "%s", text)

    def _listen(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            conn = self._conn
            try:
                kind, *args = conn.recv() if conn is not None else ("eof",)
            except (EOFError, OSError):
                kind, args = "eof", []
            if kind == "eof":
                if self._stopping.is_set():
                    return
                backoff = self._restart(backoff)
                continue
            backoff = 1.0
            if kind == "log":
                self._log(*args)
            elif kind == "plant_alarm":
                self.on_alarm(*args)
            elif kind == "prepare":
                threading.Thread(
                    target=self._prepare, args=args, name="aoi-plant-prepare", daemon=True
                ).start()
            elif kind == "reply":
                self._answer(*args)

    def _restart(self, backoff: float) -> float:
        proc = self._proc
        if proc is not None:
            proc.join(1.0)
        code = proc.exitcode if proc is not None else None
        text = f"the plant publishers' process stopped (exit code {code}); starting it again"
        log.error("plant: %s", text)
        self.on_alarm("publishers", text)
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
        self._stopping.wait(backoff)
        if self._stopping.is_set():
            return backoff
        try:
            self._start()
        except PlantError as err:
            log.error("plant: %s", err)  # noqa: TRY400 (the reason is the message)
            return min(backoff * 2, RESTART_MAX_S)
        self.restarts += 1
        self.on_alarm("publishers", None)
        return 1.0

    def _prepare(self, key: int, kind: str, external_id: str, who: str) -> None:
        try:
            self._send("reply", key, True, self.prepare(kind, external_id, who))
        except AoiError as err:
            self._send("reply", key, False, str(err))

    def _answer(self, key: int, ok: bool, value: Any) -> None:
        waiting = self._replies.get(key)
        if waiting is not None:
            waiting[1].extend((ok, value))
            waiting[0].set()

    def call(self, what: str, timeout: float = 30.0) -> dict[str, Any]:
        """The bench's controls: ``pause``, ``resume``, ``release``, ``stats`` (each answers
        with the outboxes' counts, whether they caught up, and the host's CPU seconds)."""
        done, box = threading.Event(), []
        with self._send_lock:
            self._next += 1
            key = self._next
            self._replies[key] = (done, box)
        try:
            if not self._send("call", key, what) or not done.wait(timeout):
                msg = f"the plant publishers did not answer {what!r}"
                raise PlantError(msg)
        finally:
            self._replies.pop(key, None)
        return dict(box[1])

    # -- what the station tells the publishers ------------------------------------------------

    def publish_state(self, state: dict[str, Any]) -> None:
        self._last_state = state
        if self.scale is not None and (known := self.scale()) is not None:
            self._send("scale", *known)
        self._send("state", state)

    def publish_alarm(self, alarm: dict[str, Any]) -> None:
        self._send("alarm", alarm)
