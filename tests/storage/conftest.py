"""Fixtures of the storage tests: databases (a SQLite file; a throwaway PostgreSQL cluster),
inspection results with known content, storages on them, and a fault switch at the write boundary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from storage_helpers import (
    PgServer,
    ResultFactory,
    StorageFactory,
    WriteFault,
    free_port,
    importlib_ok,
    pg_bindir,
    wait_for,
)

from aoi.config import StorageConfig
from aoi.storage import Storage
from aoi.types import Defect, Defects, ErrorKind, InspectionResult, Registration, Verdict

# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL cluster of its own on 127.0.0.1 and a free port, for this test session."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found under "
            "/usr/lib/postgresql/*/bin or on PATH; .ci/run installs them "
            "(apt-get install postgresql)"
        )
    if not importlib_ok("psycopg"):
        pytest.skip("psycopg is not installed: pip install 'aoi-station[fleet]'")
    base = Path(tempfile.mkdtemp(prefix="aoi-pg-"))
    data, log = base / "data", base / "server.log"
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run initdb as")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=90, check=False
        )
        if done.returncode:
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{args[0]} failed ({done.returncode}): {done.stderr}\n{tail}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync")
    options = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = str(bindir / "pg_ctl")
    run(pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", options, "start")
    try:
        yield PgServer(port, count(1))
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'aoi.db').as_posix()}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'aoi.db').as_posix()}"


# -- results ------------------------------------------------------------------------------------


@pytest.fixture
def make_result() -> ResultFactory:
    """Inspection results with chosen verdict, defects, time, recipe and identity."""
    ids = count(1)

    def _make(
        verdict: Verdict = Verdict.NG,
        defects: int | list[tuple[str, float]] = 5,
        *,
        review: list[tuple[str, float]] = (),  # type: ignore[assignment]
        ts: float | None = None,
        recipe: str = "board-a",
        recipe_hash: str = "a" * 64,
        cycle_ms: float = 12.5,
        serial: str = "",
        part_sequence: int | None = None,
        frame: Any = None,
        frame_id: int | None = None,
    ) -> InspectionResult:
        from aoi.types import DEFECT_CLASSES

        i = next(ids)
        if isinstance(defects, int):
            defects = [("spurious_copper", 0.9)] * defects if verdict is Verdict.NG else []

        def mk(items: list[tuple[str, float]]) -> Defects:
            return Defects.from_items(
                Defect(DEFECT_CLASSES.index(name) + 1, name, (10 * k, 5, 10 * k + 6, 11), 36, s)
                for k, (name, s) in enumerate(items)
            )

        return InspectionResult(
            inspection_id=i,
            frame_id=i if frame_id is None else frame_id,
            frame_name=f"board-{i}",
            recipe_name=recipe,
            recipe_hash=recipe_hash,
            model_hash="m" * 64,
            backend="onnxruntime-cpu",
            verdict=verdict,
            defects=mk(defects),
            review_defects=mk(list(review)),
            stages_ms={"acquire": 0.1, "register": 2.0, "infer": 8.0},
            cycle_ms=cycle_ms,
            over_budget=False,
            registration=Registration.identity(0.97, 3.0),
            error="no frame within 2 s" if verdict is Verdict.ERROR else "",
            error_kind=ErrorKind.CAMERA_TIMEOUT if verdict is Verdict.ERROR else ErrorKind.NONE,
            verdict_reason="" if verdict is Verdict.ERROR else f"{len(defects)} defect(s)",
            timestamp_utc=time.time() if ts is None else ts,
            part_sequence=i if part_sequence is None else part_sequence,
            serial=serial or f"SN{i:06d}",
            frame=frame,
        )

    return _make


# -- storages -------------------------------------------------------------------------------------


@pytest.fixture
def make_storage(tmp_path: Path) -> StorageFactory:
    """A Storage (not yet entered) on ``url``, journal and archive in tmp_path, quick batches."""

    def _make(url: str, journal: str = "journal", **config: Any) -> Storage:
        settings: dict[str, Any] = {
            "journal_dir": tmp_path / journal,
            "archive_dir": tmp_path / "archive",
            "archive_images": False,
            "flush_interval_ms": 50,
            "min_free_gb": 0.0,
        }
        settings.update(config)
        stop_timeout_s = settings.pop("stop_timeout_s", 10.0)
        return Storage(
            StorageConfig(**settings),
            station_id="test-station",
            database_url=url,
            data_dir=tmp_path,
            stop_timeout_s=stop_timeout_s,
        )

    return _make


@pytest.fixture
def write_fault() -> Callable[[Storage], WriteFault]:
    return lambda storage: WriteFault(storage.db.engine)


@pytest.fixture
def wait() -> Callable[..., None]:
    return wait_for
