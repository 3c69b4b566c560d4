"""Retention of defect-log rows (``aoi prune``), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from storage_helpers import ResultFactory, StorageFactory

from aoi.cli import main
from aoi.storage import Verification
from aoi.storage.db import Database
from aoi.storage.errors import StorageError
from aoi.storage.lookup import review_queue
from aoi.storage.report import parse_age
from aoi.storage.retention import prune_rows
from aoi.storage.reviews import record_review
from aoi.storage.tables import Defect, Inspection, Review
from aoi.types import Verdict

NOW = datetime.now(UTC)
OLD = (NOW - timedelta(days=400)).timestamp()
RECENT = (NOW - timedelta(days=1)).timestamp()


@pytest.fixture
def log(db_url: str, make_storage: StorageFactory, make_result: ResultFactory) -> str:
    """Six boards: old and recent each an OK, an NG waiting for review, an NG reviewed."""
    with make_storage(db_url) as storage:
        for ts, tag in ((OLD, "old"), (RECENT, "new")):
            storage.publish(make_result(Verdict.OK, ts=ts, serial=f"{tag}-ok"))
            storage.publish(make_result(Verdict.NG, 2, ts=ts, serial=f"{tag}-waiting"))
            storage.publish(make_result(Verdict.NG, 3, ts=ts, serial=f"{tag}-reviewed"))
    with Database(db_url) as db:
        for serial in ("old-reviewed", "new-reviewed"):
            for defect_id in _defects_of(db, serial):
                record_review(db, defect_id, "op1", Verification.FALSE_CALL, "dust")
    return db_url


def _defects_of(db: Database, serial: str) -> list[int]:
    with db.session() as s:
        return list(
            s.scalars(
                select(Defect.id)
                .join(Inspection, Inspection.uuid == Defect.inspection_uuid)
                .where(Inspection.serial == serial)
            )
        )


def _counts(db: Database) -> tuple[int, int, int]:
    with db.session() as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(t)) for t in (Inspection, Defect, Review)
        )


def _serials(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(Inspection.serial)))


def test_prune_deletes_old_rows_but_keeps_boards_waiting_for_review(log: str) -> None:
    with Database(log) as db:
        assert _counts(db) == (6, 10, 6)
        dry = prune_rows(db, timedelta(days=365), dry_run=True)
        assert (dry.inspections, dry.defects, dry.reviews, dry.kept_unreviewed) == (2, 3, 3, 1)
        assert _counts(db) == (6, 10, 6), "a dry run deletes nothing"
        done = prune_rows(db, timedelta(days=365), batch=1)  # one board per transaction
        assert (done.inspections, done.defects, done.reviews, done.kept_unreviewed) == (2, 3, 3, 1)
        assert not done.dry_run
        assert _serials(db) == {"old-waiting", "new-ok", "new-waiting", "new-reviewed"}
        assert _counts(db) == (4, 7, 3)
        assert "old-waiting" in {r.serial for r in review_queue(db)}, "still in the queue"
        again = prune_rows(db, timedelta(days=365))
        assert (again.inspections, again.kept_unreviewed) == (0, 1)
        forced = prune_rows(db, timedelta(days=365), include_unreviewed=True)
        assert (forced.inspections, forced.defects) == (1, 2)
        assert _serials(db) == {"new-ok", "new-waiting", "new-reviewed"}


def test_aoi_prune_command(log: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "--older-than", "52w", "--db", log, "--dry-run", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "would delete 2 inspections" in out[0]
    assert json.loads(out[-1])["inspections"] == 2
    assert main(["prune", "--older-than", "52w", "--db", log, "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "deleted 2 inspections" in out[0] and "kept 1 old boards" in out[0]
    with Database(log) as db:
        assert len(_serials(db)) == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [("365d", timedelta(days=365)), ("52w", timedelta(weeks=52)), ("12h", timedelta(hours=12))],
)
def test_ages(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["a year", "-5d", "2025-01-01", ""])
def test_bad_age_names_the_option_and_the_value(text: str) -> None:
    with pytest.raises(StorageError, match=rf"--older-than must be like 90d.*got {text!r}"):
        parse_age(text)


def test_prune_refuses_a_zero_age(sqlite_url: str) -> None:
    with Database(sqlite_url) as db, pytest.raises(ValueError, match="age must be positive"):
        prune_rows(db, timedelta(0))
