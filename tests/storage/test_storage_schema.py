"""Schema and migrations on SQLite and PostgreSQL: a new database is made at head with the
session settings the station relies on; a database of revision 1 keeps its rows when upgraded,
one of revision 2 gets its ERROR rows' kinds; one from a newer aoi is refused with a message that
says so. Also the [storage] config section.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Table, insert, inspect, select, text

from aoi.config import load_station_config
from aoi.errors import StationConfigError
from aoi.storage import SchemaError, StorageError
from aoi.storage.db import Database
from aoi.storage.tables import AuditEvent, Base, Defect, Inspection, Review


def test_new_database_is_created_at_head_and_matches_the_models(db_url: str) -> None:
    with Database(db_url) as db:
        assert db.current_revision() is None
        db.upgrade()
        assert db.current_revision() == db.head_revision() == "0004"
        with db.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
        db.upgrade()  # idempotent: a second start changes nothing
        assert db.current_revision() == "0004"


@pytest.mark.parametrize(("synchronous", "code"), [("NORMAL", 1), ("FULL", 2)])
def test_sqlite_runs_in_wal_with_foreign_keys_busy_timeout_and_chosen_sync(
    sqlite_url: str, synchronous: str, code: int
) -> None:
    with Database(sqlite_url, sqlite_synchronous=synchronous, busy_timeout_ms=1234) as db:
        db.upgrade()
        with db.engine.connect() as conn:

            def pragma(name: str) -> object:
                return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 1234
            assert pragma("synchronous") == code


AT = datetime(2025, 1, 20, 8, 30, tzinfo=UTC)


def _revision_1_inspection(u: uuid.UUID, **changes: object) -> dict[str, object]:
    """The values of an ``inspections`` row as revisions 1 and 2 had its columns."""
    values: dict[str, object] = {
        "uuid": u,
        "station_id": "line-3",
        "inspected_at": AT,
        "inspection_id": 7,
        "part_sequence": 4711,
        "serial": "PCB-0001",
        "recipe_name": "board-a",
        "recipe_hash": "a" * 64,
        "model_hash": "m" * 64,
        "backend": "onnxruntime-cpu",
        "verdict": "NG",
        "defect_count": 1,
        "review_count": 0,
        "top_class": "short",
        "cycle_ms": 21.5,
        "over_budget": False,
        "stages_ms": {"infer": 9.0},
        "registration": None,
        "error": "",
        "frame_id": 7,
        "frame_name": "b7",
        "image_path": None,
        "preview_path": None,
    }
    return {**values, **changes}


def _rows_at_revision_1(db: Database) -> uuid.UUID:
    """One inspection with a reviewed defect and an audit event, written as revision 1 stood."""
    u = uuid.uuid4()
    at = AT
    with db.engine.begin() as conn:
        conn.execute(insert(cast(Table, Inspection.__table__)), _revision_1_inspection(u))
        defect_id = conn.execute(
            insert(cast(Table, Defect.__table__)).returning(Defect.__table__.c.id),
            {
                "inspection_uuid": u,
                "band": "defect",
                "class_id": 2,
                "class_name": "short",
                "x0_px": 1,
                "y0_px": 2,
                "x1_px": 3,
                "y1_px": 4,
                "area_px": 4,
                "score": 0.8,
                "review_state": "DefectRejected",
            },
        ).scalar_one()
        conn.execute(
            insert(cast(Table, Review.__table__)),
            {
                "defect_id": defect_id,
                "reviewed_at": at,
                "reviewer": "op1",
                "station_id": "line-3",
                "decision": "DefectRejected",
                "comment": "dust",
            },
        )
        conn.execute(
            insert(cast(Table, AuditEvent.__table__)),
            {
                "at": at,
                "who": "eng",
                "station_id": "line-3",
                "what": "recipe board-a threshold short",
                "old_value": "0.5",
                "new_value": "0.6",
            },
        )
    return u


def test_upgrade_from_revision_1_keeps_every_row(db_url: str) -> None:
    with Database(db_url) as db:
        db.upgrade("0001")
        assert "recipes" not in inspect(db.engine).get_table_names()
        u = _rows_at_revision_1(db)

        db.upgrade()

        assert db.current_revision() == "0004"
        names = inspect(db.engine)
        assert "recipes" in names.get_table_names()
        indexes = {ix["name"] for ix in names.get_indexes("inspections")}
        assert {"ix_inspections_serial", "ix_inspections_part_sequence"} <= indexes
        with db.session() as s:
            row = s.get(Inspection, u)
            assert row is not None
            assert (row.serial, row.part_sequence, row.verdict) == ("PCB-0001", 4711, "NG")
            assert row.inspected_at == datetime(2025, 1, 20, 8, 30, tzinfo=UTC)
            [defect] = row.defects
            assert defect.review_state == "DefectRejected"
            assert [r.comment for r in defect.reviews] == ["dust"]
            assert s.scalars(select(AuditEvent.new_value)).all() == ["0.6"]


def test_upgrade_from_revision_2_gives_error_rows_their_kind(db_url: str) -> None:
    # Before 0003 the kind of an ERROR was only the prefix of its text.
    errors = {
        "camera timeout: no frame within 2 s": "camera_timeout",
        "bad frame: frame must be 640x640 px": "bad_frame",
        "registration correlation must be >= 0.60, got 0.2": "other",
    }
    with Database(db_url) as db:
        db.upgrade("0002")
        columns = {c["name"] for c in inspect(db.engine).get_columns("inspections")}
        assert "error_kind" not in columns
        ng = _rows_at_revision_1(db)  # an NG board
        expected = {ng: "none"}
        with db.engine.begin() as conn:
            for error, kind in errors.items():
                u = uuid.uuid4()
                values = _revision_1_inspection(u, verdict="ERROR", error=error)
                conn.execute(insert(cast(Table, Inspection.__table__)), values)
                expected[u] = kind

        db.upgrade()

        assert db.current_revision() == "0004"
        with db.session() as s:
            got = {i.uuid: (i.error_kind, i.verdict_reason) for i in s.scalars(select(Inspection))}
        assert got == {u: (kind, "") for u, kind in expected.items()}


def test_upgrade_from_revision_3_keeps_rows_with_no_line_verdict(db_url: str) -> None:
    # Before 0004 the verdict the line received was not stored: NULL says "not recorded".
    with Database(db_url) as db:
        db.upgrade("0003")
        columns = {c["name"] for c in inspect(db.engine).get_columns("inspections")}
        assert "line_verdict" not in columns
        ng = _rows_at_revision_1(db)
        db.upgrade()
        assert db.current_revision() == "0004"
        with db.session() as s:
            row = s.get(Inspection, ng)
            assert row is not None
            assert (row.verdict, row.line_verdict, row.line_error) == ("NG", None, "")


def test_a_database_from_a_newer_aoi_is_refused(sqlite_url: str) -> None:
    with Database(sqlite_url) as db:
        db.upgrade()
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        with pytest.raises(SchemaError, match=r"revision 0099.*newer aoi"):
            db.upgrade()


def test_storage_on_a_newer_database_stops_cleanly(sqlite_url: str, tmp_path: Path) -> None:
    from aoi.config import StorageConfig
    from aoi.storage import Storage

    with Database(sqlite_url) as db:
        db.upgrade()
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    config = StorageConfig(journal_dir=tmp_path / "journal", archive_images=False)
    storage = Storage(config, station_id="s", database_url=sqlite_url, data_dir=tmp_path)
    with pytest.raises(SchemaError, match="0099"), storage:
        pass
    assert not list((tmp_path / "journal").glob("journal-*.jsonl"))  # the thread guard checks


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no SQLite file at"),
        ("empty", "no AOI schema"),
    ],
)
def test_readers_refuse_a_database_without_the_schema(
    tmp_path: Path, setup: str, message: str
) -> None:
    path = tmp_path / "x.db"
    if setup == "empty":
        with Database(f"sqlite:///{path}") as db, db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
    with Database(f"sqlite:///{path}") as db, pytest.raises(StorageError, match=message):
        db.require_schema()


def test_bad_url_and_missing_driver_name_the_url() -> None:
    with pytest.raises(StorageError, match="not an SQLAlchemy URL"):
        Database("not a url")
    with pytest.raises(StorageError, match="no driver for 'nosuch'"):
        Database("nosuch://host/db")


def test_storage_section_of_the_station_config(tmp_path: Path) -> None:
    path = tmp_path / "station.toml"
    path.write_text(
        'station_id = "line-3"\n[storage]\ndatabase_url = "sqlite:///x.db"\n'
        'journal_dir = "journal"\nok_sample_rate = 0.01\nsqlite_synchronous = "FULL"\n',
        encoding="utf-8",
    )
    cfg = load_station_config(path).storage
    assert cfg.journal_dir == tmp_path / "journal"
    assert (cfg.ok_sample_rate, cfg.sqlite_synchronous) == (0.01, "FULL")
    path.write_text("[storage]\nshift_starts_h = [14, 6]\n", encoding="utf-8")
    with pytest.raises(StationConfigError, match=r"storage.shift_starts_h"):
        load_station_config(path)
