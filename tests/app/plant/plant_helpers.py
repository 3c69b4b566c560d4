"""Brokers the plant tests start themselves, and a station's defect log to publish from."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from proton.handlers import MessagingHandler, Reject
from proton.reactor import Container

from aoi.config import StorageConfig
from aoi.storage import Storage
from aoi.types import (
    DEFECT_CLASSES,
    Defect,
    Defects,
    ErrorKind,
    Frame,
    InspectionResult,
    LineAnswer,
    Registration,
    Verdict,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.01)


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout_s: float, what: str) -> None:
    """Until ``port`` on 127.0.0.1 takes a connection; the test fails if ``proc`` (a broker
    the test started) exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"{what} did not start")
            time.sleep(0.05)
        else:
            return


class Mosquitto:
    """A private mosquitto on a free port, persistent (a restart keeps sessions and queues)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.skip("mosquitto is not installed (Debian mosquitto; .ci/run installs it)")
        self.binary = binary
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            "user root\n"
            f"log_dest file {folder}/mosquitto.log\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)])
        wait_listening(self.proc, self.port, 10, f"mosquitto ({self.folder}/mosquitto.log)")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and queues, as a service stop would."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class AmqpPeer(MessagingHandler):
    """An AMQP 1.0 listener that accepts and keeps every message (duplicates included), on its
    own thread; :meth:`stop` closes its connections and :meth:`start` listens again on the same
    port, keeping what it got (a broker stopped and restarted)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.url = f"127.0.0.1:{port}"
        self.got: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.addresses: set[str] = set()
        self.connections: list[Any] = []
        #: Message names (their ends) to reject once each, and the messages rejected.
        self.reject_once: list[str] = []
        self.rejected: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.listening = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.stopping.clear()
        self.listening.clear()
        container = Container(self)
        self._thread = threading.Thread(target=container.run, daemon=True)
        self._thread.start()
        assert self.listening.wait(10)

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def on_start(self, event: Any) -> None:
        self.acceptor = event.container.listen(self.url)
        self.listening.set()
        event.container.schedule(0.05, self)

    def on_connection_opened(self, event: Any) -> None:
        self.connections.append(event.connection)

    def on_timer_task(self, event: Any) -> None:
        if self.stopping.is_set():
            self.acceptor.close()
            for conn in self.connections:  # as a broker going down drops its clients
                conn.close()
                if conn.transport is not None:  # not closed by the client already
                    conn.transport.close_tail()
                    conn.transport.close_head()
            self.connections.clear()
            event.container.stop()
        else:
            event.container.schedule(0.05, self)

    def on_link_opening(self, event: Any) -> None:
        address = event.link.remote_target.address
        if address:  # a queue of that name, as a broker's node would be
            self.addresses.add(address)
            event.link.target.address = address

    def on_message(self, event: Any) -> None:
        body = json.loads(event.message.body)
        refused = [n for n in self.reject_once if body["MessageName"].endswith(n)]
        if refused:  # as a broker refusing one message (a full queue): rejected, not kept
            self.reject_once.remove(refused[0])
            self.rejected.append(body)
            raise Reject
        self.ids.append(str(event.message.id))
        self.got.append(body)

    def named(self, name: str) -> list[dict[str, Any]]:
        """The messages of one CFX message name (``...UnitsInspected``), in arrival order."""
        return [m for m in list(self.got) if m["MessageName"].endswith(name)]


def station_log(tmp_path: Path, station_id: str = "s1", *, archive: bool = False) -> Storage:
    """The defect log of a station (SQLite), with small journal segments that are pruned soon;
    ``archive``: the frames are archived too (Parts then gives each inspection a frame)."""
    config = StorageConfig(
        journal_dir=tmp_path / "journal",
        archive_images=archive,
        flush_interval_ms=20,
        min_free_gb=0,
    )
    return Storage(
        config,
        station_id=station_id,
        database_url=f"sqlite:///{tmp_path / 'aoi.db'}",
        data_dir=tmp_path,
        segment_bytes=4096,
    )


class Parts:
    """Inspects boards into a defect log as the station does: inspection, cycle, line."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.next_id = storage.last_inspection_id() + 1
        self.ids: list[int] = []

    def inspect(self, n: int, defects: int = 2) -> list[int]:
        done = []
        for _ in range(n):
            i = self.next_id
            self.next_id += 1
            short = DEFECT_CLASSES.index("short") + 1
            found = Defects.from_items(
                Defect(short, "short", (10 * k, 5, 10 * k + 6, 11), 36, 0.9) for k in range(defects)
            )
            r = InspectionResult(
                inspection_id=i,
                frame_id=i,
                frame_name=f"board-{i}",
                recipe_name="board-a",
                recipe_hash="a" * 64,
                model_hash="m" * 64,
                backend="onnxruntime-cpu",
                verdict=Verdict.NG if defects else Verdict.OK,
                defects=found,
                review_defects=Defects.from_items([]),
                stages_ms={"acquire": 0.1, "infer": 8.0},
                cycle_ms=12.5,
                over_budget=False,
                registration=Registration.identity(0.97, 3.0),
                error="",
                error_kind=ErrorKind.NONE,
                verdict_reason=f"{defects} defect(s)",
                timestamp_utc=time.time(),
                part_sequence=i,
                serial=f"SN{i:06d}",
                frame=Frame(np.zeros((32, 64), np.uint8), i, time.perf_counter_ns(), "test"),
            )
            self.storage.publish(r)
            self.storage.finish(r)
            self.storage.record_line(LineAnswer(i, r.verdict))
            done.append(i)
        self.ids += done
        return done
