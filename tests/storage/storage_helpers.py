"""Helpers of the storage tests (importable; conftest.py holds the fixtures)."""

from __future__ import annotations

import glob
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from aoi.storage import Storage
from aoi.types import InspectionResult

ResultFactory = Callable[..., InspectionResult]
StorageFactory = Callable[..., Storage]
Wait = Callable[..., None]


def pg_bindir() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(d, "initdb").is_file() and Path(d, "pg_ctl").is_file():
            return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    port: int
    _names: Iterator[int]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"aoi_test_{next(self._names)}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def connect(self, url: str) -> Any:
        import psycopg

        return psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname={url.rsplit('/', 1)[1]}"
        )


def importlib_ok(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


class WriteFault:
    """Makes every INSERT/UPDATE fail with the database's own error while switched on.

    Simulates a full disk (or a refusing server) at the write boundary: the real error classes
    (``sqlite3.OperationalError: database or disk is full``, ``psycopg.errors.DiskFull``), raised
    where the driver would raise them, so SQLAlchemy wraps them as it would the real thing.
    """

    def __init__(self, engine: Engine) -> None:
        self.on = False
        self.hits = 0
        self.dialect = engine.dialect.name
        event.listen(engine, "before_cursor_execute", self._hook)

    def _error(self) -> Exception:
        if self.dialect == "sqlite":
            import sqlite3

            return sqlite3.OperationalError("database or disk is full")
        import psycopg.errors

        return psycopg.errors.DiskFull("could not extend file: No space left on device")

    def _hook(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.on and statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            self.hits += 1
            raise self._error()


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(0.01)
