"""The plant publishers' own process: MQTT, IPC-CFX and the OPC UA server, off the station's GIL.

:class:`aoi.app.plant.process.PlantProcess` starts :func:`host_main` in a child process (spawn)
with a :class:`HostSettings`. The child reads the station's journal through a
:class:`~aoi.storage.journal_read.JournalReader` (the files are the only thing it shares with
the station: no lock, no queue, no memory), runs one outbox per publisher from its saved
position, and talks to the station over one pipe:

- station -> host: ``state`` and ``alarm`` (the station's state and alarm history, handed to
  every publisher), ``scale`` (the active recipe's ``[geometry] mm_per_px``), ``reply``
  (the answer to a ``prepare``), ``call`` (the bench's pause/resume/stats) and ``stop``;
- host -> station: ``ready`` / ``failed`` once at start, ``plant_alarm`` (a broker lost or
  back), ``prepare`` (an OPC UA client's PrepareRecipe/PrepareProduct, carried out by the
  station as LOAD_RECIPE is) and ``log`` (its log records, written to the station's log).

Once its publishers are open, every thread of the process runs at ``[plant] niceness`` and, when
set, on ``[plant] cpus`` (aoi/app/plant/placement.py): under load publishing lags, not the
cycle. It starts at the station's priority (``SCHED_IDLE`` was tried and dropped: on a CPU kept
busy it got no time at all; under two CPU burners it did not even finish starting in 60 s). The
station that loses this process gets an alarm and a new one.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import tomllib
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aoi.app.plant.placement import check_cpus, place
from aoi.config import StationConfig
from aoi.errors import AoiError
from aoi.storage.db import DB_ERRORS, Database
from aoi.storage.journal_read import JournalReader
from aoi.storage.outbox import Outbox
from aoi.storage.records import RECIPE
from aoi.storage.review_feed import ReviewFeed

log = logging.getLogger(__name__)

#: How often an outbox looks for new records: each look sends what came since as one batch.
POLL_S = 0.5
#: How long an OPC UA client's recipe change may take (loading a model, warming it up).
PREPARE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class HostSettings:
    """What the child needs to know; pickled into it at start."""

    config: StationConfig
    journal_dir: Path
    database_url: str
    data_dir: Path
    wait_for_line: bool
    #: Each recipe's scale the station knows at start, by content hash.
    scales: tuple[tuple[str, float | None], ...] = ()


class _Pipe:
    """The child's end of the pipe: sends from any thread, one at a time."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self._next = 0
        self._waiting: dict[int, tuple[threading.Event, list[Any]]] = {}

    def send(self, *message: Any) -> None:
        # A station that is gone (OSError, ValueError): the main loop ends on the pipe's EOF.
        with self._lock, suppress(OSError, ValueError):
            self.conn.send(message)

    def ask(self, *question: Any, timeout: float) -> Any:
        """Send ``question`` with a fresh id and wait for the station's ``reply``."""
        done, box = threading.Event(), []
        with self._lock:
            self._next += 1
            key = self._next
            self._waiting[key] = (done, box)
        self.send(question[0], key, *question[1:])
        try:
            if not done.wait(timeout):
                msg = f"the station did not answer within {timeout:.0f} s"
                raise AoiError(msg)
        finally:
            with self._lock:
                self._waiting.pop(key, None)
        ok, value = box
        if not ok:
            raise AoiError(value)
        return value

    def answer(self, key: int, ok: bool, value: Any) -> None:
        with self._lock:
            waiting = self._waiting.get(key)
        if waiting is not None:
            waiting[1].extend((ok, value))
            waiting[0].set()


class _ForwardLog(logging.Handler):
    """The child's log records go to the station's log (its handlers, its files)."""

    def __init__(self, pipe: _Pipe) -> None:
        super().__init__()
        self.pipe = pipe

    def emit(self, record: logging.LogRecord) -> None:
        # The message, and the traceback of a record that has one.
        self.pipe.send("log", record.levelno, record.name, self.format(record))


class Scales:
    """Each recipe's ``[geometry] mm_per_px`` by content hash: from the station, and from each
    ``recipe`` record the outboxes read (so an inspection right after a switch has it)."""

    def __init__(self, known: tuple[tuple[str, float | None], ...]) -> None:
        self.known: dict[str, float | None] = dict(known)

    def __call__(self, content_hash: str) -> float | None:
        return self.known.get(content_hash)

    def learn(self, record: dict[str, Any]) -> None:
        if record.get("t") != RECIPE or record.get("hash") in self.known:
            return
        try:
            geometry = tomllib.loads(record.get("content") or "").get("geometry", {})
            scale = geometry.get("mm_per_px")
        except (tomllib.TOMLDecodeError, AttributeError, TypeError):
            return
        self.known[str(record["hash"])] = float(scale) if isinstance(scale, int | float) else None


def event_sinks(
    cfg: StationConfig, scale: Callable[[str], float | None] | None = None
) -> list[tuple[str, Any]]:
    """The configured publishers that carry events (MQTT, then CFX), each with the name its
    alarm carries; a publisher's library is imported only when it is configured."""
    sinks: list[tuple[str, Any]] = []
    if cfg.mqtt.url:
        from aoi.app.plant.mqtt import MqttSink

        sinks.append(("MQTT", MqttSink(cfg.mqtt, cfg.station_id)))
    if cfg.cfx.url:
        from aoi.app.plant.cfx import CfxSink

        sinks.append(("CFX", CfxSink(cfg.cfx, cfg.station_id, scale)))
    return sinks


def _open(
    stack: ExitStack, s: HostSettings, pipe: _Pipe, scales: Scales
) -> tuple[list[Any], list[Outbox]]:
    """Open every configured publisher and its outbox on ``stack``; returns both."""
    cfg = s.config
    reader = JournalReader(s.journal_dir, on_record=scales.learn)
    common: dict[str, Any] = {
        "station_id": cfg.station_id,
        "wait_for_line": s.wait_for_line,
        "poll_s": POLL_S,
    }
    listeners: list[Any] = []
    boxes: list[Outbox] = []
    sinks = event_sinks(cfg, scales)
    reviews = None
    if sinks:
        db = Database(s.database_url)
        stack.callback(db.dispose)
        reviews = ReviewFeed(db, cfg.station_id)
    for label, sink in sinks:

        def on_alarm(text: str | None, label: str = label) -> None:
            pipe.send("plant_alarm", label, text)

        box = Outbox(reader, sink, on_alarm=on_alarm, reviews=reviews, **common)
        boxes.append(stack.enter_context(box))
        listeners.append(sink)
    if cfg.opcua.endpoint:
        from aoi.app.plant.opcua import OpcuaServer

        def prepare(kind: str, external_id: str, who: str) -> str:
            return str(pipe.ask("prepare", kind, external_id, who, timeout=PREPARE_TIMEOUT_S))

        opcua = stack.enter_context(OpcuaServer(cfg.opcua, cfg.station_id, prepare, s.data_dir))
        boxes.append(stack.enter_context(Outbox(reader, opcua, **common)))
        listeners.append(opcua)
    return listeners, boxes


def _first_attempts(boxes: list[Outbox], timeout_s: float = 10.0) -> None:
    """Wait until each outbox has connected or failed once: the station starts with its
    publishers connected (the first state change reaches the brokers) or their alarms raised."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(b.connected or b.last_error for b in boxes):
        time.sleep(0.02)


def _pause(box: Outbox) -> None:
    """The bench's "off": the "on" block just run goes out first (between blocks, in no
    block's clock), then nothing is sent."""
    if not box.paused.is_set():
        deadline = time.monotonic() + 5
        while not box.caught_up and box.connected and time.monotonic() < deadline:
            time.sleep(0.01)
        box.paused.set()


def _resume(box: Outbox) -> None:
    """The bench's "on": what the "off" block journaled is skipped (an "on" block carries
    the steady load of its own parts, not a catch-up)."""
    if box.paused.is_set():
        box.skip_to_end()
        box.paused.clear()


def _call(what: str, boxes: list[Outbox]) -> Any:
    """The bench's controls (aoi/app/plant/bench.py)."""
    if what == "pause":
        for box in boxes:
            _pause(box)
    elif what == "resume":
        for box in boxes:
            _resume(box)
    elif what == "release":
        for box in boxes:
            box.paused.clear()
    return {
        "published": {b.sink.name: b.published for b in boxes},
        "caught_up": all(b.caught_up for b in boxes),
        "cpu_s": round(time.process_time(), 3),
    }


def _serve(
    conn: Connection, pipe: _Pipe, listeners: list[Any], scales: Scales, boxes: list[Outbox]
) -> None:
    """Carry out the station's messages until ``stop`` or the pipe's end."""
    while True:
        try:
            kind, *args = conn.recv()
        except (EOFError, OSError):  # the station is gone
            return
        if kind == "stop":
            return
        if kind == "state":
            for x in listeners:
                x.publish_state(args[0])
        elif kind == "alarm":
            for x in listeners:
                x.publish_alarm(args[0])
        elif kind == "scale":
            scales.known[args[0]] = args[1]
        elif kind == "reply":
            pipe.answer(*args)
        elif kind == "call":
            pipe.send("reply", args[0], True, _call(args[1], boxes))
        else:
            log.warning("plant host: unknown message %r from the station", kind)


def _thread_died(args: threading.ExceptHookArgs) -> None:
    """A publisher's thread ended on an error nobody expected: the host ends (the station
    raises the alarm and starts a new host, which goes on from the saved positions)."""
    log.critical(
        "plant host: thread %s failed; the host ends",
        args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
    )
    os._exit(70)


def host_main(conn: Connection, settings: HostSettings) -> None:
    """The child process's entry point (``multiprocessing``, spawn)."""
    # Ctrl-C and a service stop reach the whole process group: the station stops its host.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pipe = _Pipe(conn)
    root = logging.getLogger()
    root.handlers[:] = [_ForwardLog(pipe)]
    root.setLevel(logging.INFO)
    threading.excepthook = _thread_died
    scales = Scales(settings.scales)
    with ExitStack() as stack:
        plant = settings.config.plant
        try:
            cpus = check_cpus(plant.cpus)  # before any publisher opens
            listeners, boxes = _open(stack, settings, pipe, scales)
            _first_attempts(boxes)
            place(cpus, plant.niceness)  # started at the station's priority: in time
        except (AoiError, *DB_ERRORS, OSError) as err:
            pipe.send("failed", str(err))
            return
        pipe.send("ready", os.getpid())
        _serve(conn, pipe, listeners, scales, boxes)
    conn.close()
