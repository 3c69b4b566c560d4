"""The database connection: an engine with per-dialect session settings, migrated at start-up.

SQLite (the station's embedded default) runs in WAL mode with ``foreign_keys=ON``, a busy timeout
and ``synchronous=NORMAL`` (``FULL`` on request), all set on every new connection. Python's
sqlite3 module is put in autocommit mode so that SQLAlchemy's ``begin`` emits the BEGIN itself:
``BEGIN IMMEDIATE`` for connections marked as writers, so that a writer takes the write lock
up front (waiting the busy timeout) instead of failing when a read turns into a write. PostgreSQL
(any URL, for a fleet) gets the same busy timeout as ``lock_timeout`` and a connect timeout.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, String, create_engine, event
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from aoi.storage.errors import SchemaError, StorageError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: Execution option marking a connection whose transactions write (BEGIN IMMEDIATE on SQLite).
WRITE = {"aoi_write": True}

#: Errors of a database that is unreachable, locked, full or refuses a statement. The writer
#: survives them (journal, alarm, retry); anything else is a bug.
DB_ERRORS: tuple[type[Exception], ...] = (DBAPIError,)


def default_data_dir() -> Path:
    """The user's data folder for the station (``AOI_DATA_DIR`` overrides it)."""
    if env := os.environ.get("AOI_DATA_DIR"):
        return Path(env)
    if sys.platform == "win32" and (local := os.environ.get("LOCALAPPDATA")):
        return Path(local) / "aoi"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "aoi"


def default_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'aoi.db').as_posix()}"


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and summaries."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


class hour_key(FunctionElement[str]):  # noqa: N801 (an SQL function, named like one)
    """``YYYY-MM-DD HH`` of a UTC time column, computed by the database."""

    type = String()
    inherit_cache = True
    name = "hour_key"


@compiles(hour_key, "sqlite")
def _hour_key_sqlite(element: hour_key, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%d %H', {compiler.process(element.clauses, **kw)})"


@compiles(hour_key, "postgresql")
def _hour_key_postgresql(element: hour_key, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)}, 'YYYY-MM-DD HH24')"


def _sqlite_settings(db: Database) -> tuple[dict[str, Any], Callable[[Any, Any], None]]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin event emits BEGIN
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(db.busy_timeout_ms)}")
            mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                log.warning("%s: SQLite refused WAL mode (journal_mode is %s)", db.display, mode)
            cur.execute(f"PRAGMA synchronous = {db.sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    connect_args = {"timeout": db.busy_timeout_ms / 1000, "check_same_thread": False}
    return connect_args, on_connect


def _postgresql_settings(db: Database) -> tuple[dict[str, Any], Callable[[Any, Any], None]]:
    def on_connect(_dbapi_conn: Any, _record: Any) -> None:
        pass

    options = f"-c lock_timeout={int(db.busy_timeout_ms)} -c timezone=UTC"
    return {"options": options, "connect_timeout": 5}, on_connect


#: Session settings per dialect; other dialects get SQLAlchemy's defaults.
_DIALECT_SETTINGS = {"sqlite": _sqlite_settings, "postgresql": _postgresql_settings}


class Database:
    """An engine on one database URL, its session factory, and its migrations."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
    ) -> None:
        from sqlalchemy.engine import make_url

        self.display = redact(url)
        try:
            parsed = make_url(url)
        except ArgumentError as err:
            msg = f"database URL {url!r} is not an SQLAlchemy URL ({err})"
            raise StorageError(msg) from err
        self.dialect = parsed.get_backend_name()
        self.sqlite_synchronous = sqlite_synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.sqlite_path: Path | None = None
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            self.sqlite_path = Path(parsed.database)
        settings = _DIALECT_SETTINGS.get(self.dialect)
        connect_args, on_connect = settings(self) if settings else ({}, None)
        try:
            self.engine: Engine = create_engine(
                parsed, connect_args=connect_args, pool_pre_ping=self.dialect != "sqlite"
            )
        except (NoSuchModuleError, ImportError) as err:
            msg = (
                f"database {self.display}: no driver for {parsed.drivername!r} ({err}); "
                "PostgreSQL needs the 'fleet' extra: pip install 'aoi-station[fleet]'"
            )
            raise StorageError(msg) from err
        if on_connect is not None:
            event.listen(self.engine, "connect", on_connect)
        if self.dialect == "sqlite":
            event.listen(self.engine, "begin", _sqlite_begin)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.dispose()

    def dispose(self) -> None:
        self.engine.dispose()

    def create_folder(self) -> None:
        """Make the SQLite file's folder (SQLite makes the file, not its folder)."""
        if self.sqlite_path is not None:
            try:
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                msg = f"database {self.display}: cannot create folder {self.sqlite_path.parent}"
                raise StorageError(f"{msg} ({err})") from err

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on an error."""
        with self.sessions.begin() as s:
            yield s

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """Like :meth:`session`, for writes: SQLite takes the write lock at BEGIN."""
        with (
            self.write_connection() as conn,
            Session(bind=conn, expire_on_commit=False) as s,
            s.begin(),
        ):
            yield s

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A connection whose transactions write (SQLite: BEGIN IMMEDIATE)."""
        with self.engine.connect() as conn:
            conn.execution_options(**WRITE)  # in place
            yield conn

    # -- migrations ---------------------------------------------------------------------------

    def _alembic_config(self, conn: Connection) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        return cfg

    def head_revision(self) -> str:
        script = ScriptDirectory(str(MIGRATIONS))
        head = script.get_current_head()
        assert head is not None
        return head

    def current_revision(self) -> str | None:
        """The schema revision the database is at (None for an empty database)."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema to ``revision`` (a new database is created at it).

        Raises :class:`SchemaError` when the database is at a revision this aoi does not know
        (a newer aoi wrote it); database errors (unreachable, locked) pass through.
        """
        self.create_folder()
        with self.write_connection() as conn:
            sqlite = self.dialect == "sqlite"
            if sqlite:
                # SQLite's batch mode copies and drops tables: with foreign keys on, dropping
                # ``inspections`` would cascade into ``defects``. Off outside the transaction
                # (inside it the pragma is ignored), checked before commit, on again after.
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    if self.dialect == "postgresql":
                        # Stations of a fleet starting together migrate one after the other.
                        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(51505)")
                    self._upgrade_in(conn, revision)
                    if sqlite and (bad := conn.exec_driver_sql("PRAGMA foreign_key_check").all()):
                        msg = f"database {self.display}: migration broke foreign keys: {bad[:5]}"
                        raise SchemaError(msg)
            finally:
                if sqlite:
                    conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]

    def _upgrade_in(self, conn: Connection, revision: str) -> None:
        try:
            command.upgrade(self._alembic_config(conn), revision)
        except CommandError as err:
            found = MigrationContext.configure(conn).get_current_revision()
            msg = (
                f"database {self.display}: cannot migrate schema revision {found} to "
                f"{revision} ({err}); a newer aoi may have written it: upgrade aoi or point "
                "[storage] database_url at another database"
            )
            raise SchemaError(msg) from err

    def require_schema(self) -> None:
        """For readers (``aoi report``): the database must exist and carry the AOI schema."""
        if self.sqlite_path is not None and not self.sqlite_path.is_file():
            msg = f"database {self.display}: no SQLite file at {self.sqlite_path}"
            raise StorageError(msg)
        try:
            found = self.current_revision()
        except DB_ERRORS as err:
            msg = f"database {self.display}: cannot read it ({err.orig or err})"
            raise StorageError(msg) from err
        if found is None:
            msg = (
                f"database {self.display}: no AOI schema (no alembic_version table); "
                "a station creates it on its first run"
            )
            raise SchemaError(msg)
        if found != self.head_revision():
            self.upgrade()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("aoi_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
