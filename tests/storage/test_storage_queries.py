"""Queries on known data (SQLite and PostgreSQL): yield per hour/shift/recipe/station, defect
Pareto, false calls from reviews, cycle-time distribution, lookups, the review queue, reviews
and audit events, and ``aoi report`` printing and exporting them.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from storage_helpers import ResultFactory, StorageFactory

from aoi.cli import main as report_main
from aoi.storage import ReviewError, Verification
from aoi.storage.db import Database
from aoi.storage.queries import (
    Window,
    audit_events,
    cycle_times,
    defect_pareto,
    false_calls,
    find_inspections,
    record_audit,
    record_review,
    review_queue,
    shift_of,
    yield_table,
)
from aoi.storage.report import parse_since
from aoi.types import Verdict

T0 = datetime(2025, 3, 10, 5, 0, tzinfo=UTC)  # a Monday, 05:00 UTC
UTC_ZONE = ZoneInfo("UTC")


def _at(hours: float) -> float:
    return (T0 + timedelta(hours=hours)).timestamp()


@pytest.fixture
def known(db_url: str, make_storage: StorageFactory, make_result: ResultFactory) -> Iterator[Any]:
    """Twelve boards over three UTC hours, two recipes, two stations' worth of verdicts.

    05:xx  board-a: OK OK NG(short, open) REVIEW(review band: spur)
    06:xx  board-a: OK NG(short) NG(short, short, pin_hole) ERROR(camera timeout)
    07:xx  board-b: OK OK OK NG(mousebite)
    """
    plan: list[tuple[float, str, Verdict, list[tuple[str, float]], list[tuple[str, float]]]] = [
        (0.1, "board-a", Verdict.OK, [], []),
        (0.2, "board-a", Verdict.OK, [], []),
        (0.3, "board-a", Verdict.NG, [("short", 0.9), ("open", 0.8)], []),
        (0.4, "board-a", Verdict.REVIEW, [], [("spur", 0.4)]),
        (1.1, "board-a", Verdict.OK, [], []),
        (1.2, "board-a", Verdict.NG, [("short", 0.95)], []),
        (1.3, "board-a", Verdict.NG, [("short", 0.7), ("short", 0.6), ("pin_hole", 0.9)], []),
        (1.4, "board-a", Verdict.ERROR, [], []),
        (2.1, "board-b", Verdict.OK, [], []),
        (2.2, "board-b", Verdict.OK, [], []),
        (2.3, "board-b", Verdict.OK, [], []),
        (2.4, "board-b", Verdict.NG, [("mousebite", 0.99)], []),
    ]
    cycle = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 60.0]
    results = []
    with make_storage(db_url) as storage:
        for (h, recipe, verdict, found, review), ms in zip(plan, cycle, strict=True):
            r = make_result(
                verdict,
                found,
                review=review,
                ts=_at(h),
                recipe=recipe,
                recipe_hash=recipe[-1] * 64,
                cycle_ms=ms,
                serial=f"PCB-{int(h * 10):02d}",
                frame_id=-1 if verdict is Verdict.ERROR else None,
            )
            results.append((r, storage.publish(r)))
    with Database(db_url) as db:
        yield db, results


WINDOW = Window(since=T0, until=T0 + timedelta(hours=3))


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        (
            "hour",
            [
                ("2025-03-10 05:00", 4, 2, 1, 1, 0),
                ("2025-03-10 06:00", 4, 1, 2, 0, 1),
                ("2025-03-10 07:00", 4, 3, 1, 0, 0),
            ],
        ),
        (
            "shift",
            [("2025-03-09 S3 (22:00)", 4, 2, 1, 1, 0), ("2025-03-10 S1 (06:00)", 8, 4, 3, 0, 1)],
        ),
        ("recipe", [("board-a", 8, 3, 3, 1, 1), ("board-b", 4, 3, 1, 0, 0)]),
        ("station", [("test-station", 12, 6, 4, 1, 1)]),
    ],
)
def test_counts_and_first_pass_yield(known: Any, by: str, expected: list[tuple[Any, ...]]) -> None:
    db, _ = known
    rows = yield_table(db, WINDOW, by, tz=UTC_ZONE)  # type: ignore[arg-type]
    assert [(r.group, r.total, r.ok, r.ng, r.review, r.error) for r in rows] == expected
    assert [r.fpy for r in rows] == [e[2] / e[1] for e in expected]


def test_hours_and_shifts_in_the_station_time_zone(known: Any) -> None:
    db, _ = known
    berlin = ZoneInfo("Europe/Berlin")  # UTC+1 in March (before the switch)
    hours = [r.group for r in yield_table(db, WINDOW, "hour", tz=berlin)]
    assert hours == ["2025-03-10 06:00", "2025-03-10 07:00", "2025-03-10 08:00"]
    shifts = yield_table(db, WINDOW, "shift", tz=berlin, shift_starts_h=(6, 18))
    assert [(r.group, r.total) for r in shifts] == [("2025-03-10 S1 (06:00)", 12)]


@pytest.mark.parametrize(
    ("local_time", "starts", "expected"),
    [
        ("2025-03-10T06:00", (6, 14, 22), "2025-03-10 S1 (06:00)"),
        ("2025-03-10T13:59", (6, 14, 22), "2025-03-10 S1 (06:00)"),
        ("2025-03-10T22:30", (6, 14, 22), "2025-03-10 S3 (22:00)"),
        ("2025-03-11T05:59", (6, 14, 22), "2025-03-10 S3 (22:00)"),
        ("2025-03-11T00:00", (0, 12), "2025-03-11 S1 (00:00)"),
    ],
)
def test_shift_of_a_local_time(local_time: str, starts: tuple[int, ...], expected: str) -> None:
    assert shift_of(datetime.fromisoformat(local_time), starts) == expected


def test_defect_pareto_by_class(known: Any) -> None:
    db, _ = known
    rows = defect_pareto(db, WINDOW)
    assert [(r.class_name, r.count) for r in rows] == [
        ("short", 4),
        ("mousebite", 1),
        ("open", 1),
        ("pin_hole", 1),
    ]
    assert rows[0].share == pytest.approx(4 / 7)
    assert rows[-1].cumulative == pytest.approx(1.0)
    assert [(r.class_name, r.count) for r in defect_pareto(db, WINDOW, band="review")] == [
        ("spur", 1)
    ]
    only_b = defect_pareto(db, Window(since=T0, recipe="board-b"))
    assert [(r.class_name, r.count) for r in only_b] == [("mousebite", 1)]


def _defect_ids(db: Database, serial: str) -> list[int]:
    [record] = find_inspections(db, serial=serial)
    return [d.id for d in record.defects]


def test_false_call_rate_from_reviews(known: Any) -> None:
    db, _ = known
    short_open = _defect_ids(db, "PCB-03")  # NG board: short, open
    single_short = _defect_ids(db, "PCB-12")  # NG board: short
    triple = _defect_ids(db, "PCB-13")  # NG board: short, short, pin_hole
    record_review(db, short_open[0], "op1", Verification.FALSE_CALL, "dust")
    record_review(db, short_open[1], "op1", "DefectAccepted", "oxidation, tell the process")
    record_review(db, single_short[0], "op2", "confirmed")
    record_review(db, triple[0], "op2", "false_call")  # board only partly reviewed

    fc = false_calls(db, WINDOW)
    assert (fc.reviewed, fc.confirmed, fc.false_calls) == (4, 1, 3)
    assert fc.rate == pytest.approx(0.75)
    assert fc.by_class == {"short": (3, 2), "open": (1, 1), "pin_hole": (0, 0), "mousebite": (0, 0)}
    # Fully reviewed NG boards: PCB-03 (all false) and PCB-12 (confirmed).
    assert (fc.ng_boards_reviewed, fc.false_call_boards) == (2, 1)
    assert fc.board_rate == pytest.approx(0.5)
    pareto = {r.class_name: r for r in defect_pareto(db, WINDOW)}
    assert (pareto["short"].confirmed, pareto["short"].false_calls) == (1, 2)
    assert pareto["short"].not_verified == 1


def test_cycle_time_distribution_leaves_out_boards_without_a_frame(known: Any) -> None:
    db, _ = known
    c = cycle_times(db, WINDOW, bin_ms=10.0, bins=5)
    values = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 18.0, 19.0, 20.0, 60.0]  # not the ERROR
    assert c.count == 11
    assert c.p50_ms == pytest.approx(15.0)
    assert c.max_ms == 60.0
    assert c.mean_ms == pytest.approx(sum(values) / 11, abs=1e-3)
    assert [n for _, _, n in c.histogram] == [0, 9, 1, 0, 1]  # 40+ is the open last bin
    assert c.p99_ms > c.p90_ms > c.p50_ms


def test_lookup_by_serial_part_sequence_and_uuid(known: Any) -> None:
    db, results = known
    [by_serial] = find_inspections(db, serial="PCB-13")
    assert by_serial.verdict == "NG"
    assert [d.class_name for d in by_serial.defects] == ["short", "short", "pin_hole"]
    assert by_serial.recipe_hash == "a" * 64
    assert (by_serial.error_kind, by_serial.verdict_reason) == ("none", "3 defect(s)")
    r, stored = results[-1]
    [by_seq] = find_inspections(db, part_sequence=r.part_sequence)
    assert by_seq.uuid == stored.uuid
    [by_uuid] = find_inspections(db, inspection_uuid=stored.uuid)
    assert by_uuid.serial == r.serial
    [failed] = find_inspections(db, serial="PCB-14")
    assert (failed.verdict, failed.error_kind) == ("ERROR", "camera_timeout")
    assert failed.error == "no frame within 2 s"
    assert find_inspections(db, serial="nope") == []
    with pytest.raises(ValueError, match="needs serial"):
        find_inspections(db)


def test_review_queue_empties_as_defects_are_reviewed(known: Any) -> None:
    db, _ = known
    queue = review_queue(db)
    assert [r.serial for r in queue] == ["PCB-24", "PCB-13", "PCB-12", "PCB-04", "PCB-03"]
    for d in queue[0].defects:
        record_review(db, d.id, "op1", "confirmed")
    assert review_queue(db)[0].serial == "PCB-13"


@pytest.mark.parametrize(
    ("defect", "who", "decision", "expectation"),
    [
        ("first", "op1", "DefectRejected", contextlib.nullcontext()),
        ("first", "op1", Verification.CONFIRMED, contextlib.nullcontext()),
        ("first", "op1", "false_call", contextlib.nullcontext()),
        ("first", "op1", "maybe", pytest.raises(ReviewError, match="decision must be one of")),
        ("first", " ", "confirmed", pytest.raises(ReviewError, match="who must name")),
        (10**9, "op1", "confirmed", pytest.raises(ReviewError, match="no defect 1000000000")),
    ],
)
def test_record_review_validates_what_it_is_given(
    known: Any, defect: Any, who: str, decision: Any, expectation: Any
) -> None:
    db, _ = known
    defect_id = _defect_ids(db, "PCB-03")[0] if defect == "first" else defect
    with expectation:
        review = record_review(db, defect_id, who, decision, "seen", station_id="review-1")
        assert review.previous_state == "NotVerifiedYet"
        [record] = find_inspections(db, serial="PCB-03")
        assert record.defects[0].review_state == review.decision


def test_audit_events_round_trip(db_url: str) -> None:
    with Database(db_url) as db:
        db.upgrade()
        since = datetime.now(UTC) - timedelta(seconds=1)
        record_audit(db, "eng1", "recipe board-a classes.short.score", "0.5", "0.6")
        record_audit(db, "admin", "user op3 role", None, "operator", station_id="line-3")
        events = audit_events(db, since)
    assert [(e.who, e.what, e.old_value, e.new_value) for e in events] == [
        ("admin", "user op3 role", None, "operator"),
        ("eng1", "recipe board-a classes.short.score", "0.5", "0.6"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", T0 - timedelta(hours=24)),
        ("90m", T0 - timedelta(minutes=90)),
        ("7d", T0 - timedelta(days=7)),
        ("2025-03-01", datetime(2025, 3, 1, tzinfo=UTC)),
        ("2025-03-01T06:00+01:00", datetime(2025, 3, 1, 5, tzinfo=UTC)),
    ],
)
def test_since_accepts_durations_and_dates(text: str, expected: datetime) -> None:
    assert parse_since(text, UTC_ZONE, now=T0) == expected


def test_report_command_prints_tables_json_and_csv(
    known: Any, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    station = tmp_path / "station.toml"
    station.write_text('[storage]\ntimezone = "UTC"\n', encoding="utf-8")
    out_csv = tmp_path / "inspections.csv"
    argv = ["report", "--db", db_url, "--station", str(station), "--since", "2025-03-10T05:00"]
    code = report_main([*argv, "--until", "2025-03-10T08:00", "--json", "--csv", str(out_csv)])
    assert code == 0
    out = capsys.readouterr().out
    assert "first-pass yield 50.0%" in out
    assert "defect Pareto" in out and "short" in out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["total"]["total"] == 12
    assert [r["group"] for r in report["by_recipe"]] == ["board-a", "board-b"]
    assert report["cycle_ms"]["count"] == 11
    with out_csv.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12
    assert rows[0]["serial"] == "PCB-01" and rows[-1]["verdict"] == "NG"

    assert report_main(["report", "--db", db_url, "--serial", "PCB-13"]) == 0
    assert "pin_hole" in capsys.readouterr().out
    assert report_main(["report", "--db", db_url, "--serial", "nope"]) == 1
    assert report_main(["report", "--db", db_url, "--since", "yesterday"]) == 2
    assert "--since/--until must be like" in capsys.readouterr().err
