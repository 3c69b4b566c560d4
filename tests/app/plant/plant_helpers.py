"""Brokers the plant tests start themselves, and a station's defect log to publish from."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aoi.config import StorageConfig
from aoi.storage import Storage
from aoi.types import (
    DEFECT_CLASSES,
    Defect,
    Defects,
    ErrorKind,
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
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    pytest.fail(f"mosquitto did not start ({self.folder}/mosquitto.log)")
                time.sleep(0.05)
            else:
                return

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and queues, as a service stop would."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def station_log(tmp_path: Path, station_id: str = "s1") -> Storage:
    """The defect log of a station (SQLite), with small journal segments that are pruned soon."""
    config = StorageConfig(
        journal_dir=tmp_path / "journal", archive_images=False, flush_interval_ms=20, min_free_gb=0
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
            )
            self.storage.publish(r)
            self.storage.finish(r)
            self.storage.record_line(LineAnswer(i, r.verdict))
            done.append(i)
        self.ids += done
        return done
