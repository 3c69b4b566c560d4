"""The background writer on SQLite and PostgreSQL: batches, nothing lost when the database is
locked, full (simulated at the write boundary) or away, journal replay, and a publish that never
waits for any of it.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from storage_helpers import PgServer, ResultFactory, StorageFactory, Wait, WriteFault

from aoi.storage import StorageError
from aoi.storage.bench import throughput
from aoi.storage.db import Database
from aoi.storage.journal import Journal
from aoi.storage.records import inspection_record
from aoi.storage.tables import Defect, Inspection, RecipeSeen, new_uuid
from aoi.storage.writer import read_rejected
from aoi.types import InspectionResult, Verdict


def _count(url: str, model: Any = Inspection) -> int:
    with Database(url) as db, db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _uuids(url: str) -> set[str]:
    with Database(url) as db, db.session() as s:
        return {str(u) for u in s.scalars(select(Inspection.uuid))}


def _stored_uuid(storage: Any, result: Any) -> str:
    """The row key Storage gave a published result."""
    stored = storage.stored(result.inspection_id)
    assert stored is not None, f"inspection {result.inspection_id} was not published"
    return str(stored.uuid)


def _publish_all(storage: Any, results: list[Any], pause_s: float = 0.0) -> None:
    """Publish each result from a thread of its own, as the cycle does, and fail if that thread
    ever ran SQL itself or did not get through every publish (60 s hang guard): the cycle must
    never wait for the database, however slow, locked or away it is."""
    sql_threads: set[str] = set()
    errors: list[BaseException] = []

    def note_sql(*_args: Any) -> None:
        sql_threads.add(threading.current_thread().name)

    def publish() -> None:
        try:
            for r in results:
                storage.publish(r)
                if pause_s:
                    time.sleep(pause_s)
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread below
            errors.append(err)

    event.listen(storage.db.engine, "before_cursor_execute", note_sql)
    publisher = threading.Thread(target=publish, name="publisher")
    try:
        publisher.start()
        publisher.join(60)
    finally:
        event.remove(storage.db.engine, "before_cursor_execute", note_sql)
    assert not publisher.is_alive(), "publish() is waiting for something (60 s hang guard)"
    if errors:
        raise errors[0]
    assert "publisher" not in sql_threads, "publish() ran SQL on the cycle's thread"


def test_every_inspection_lands_with_its_defects_in_few_batches(
    db_url: str, make_storage: StorageFactory, make_result: ResultFactory
) -> None:
    results = [make_result(Verdict.NG, 5) for _ in range(400)] + [
        make_result(Verdict.OK) for _ in range(100)
    ]
    storage = make_storage(db_url, batch_rows=100)
    commits: list[int] = []
    event.listen(storage.db.engine, "commit", lambda _conn: commits.append(1))
    with storage:
        _publish_all(storage, results)
        first = storage.stored(results[0].inspection_id)
    status = storage.status()
    assert (status.published, status.committed, status.pending, status.lost) == (500, 500, 0, 0)
    assert status.ok, status.alarms
    assert _count(db_url) == 500
    assert _count(db_url, Defect) == 2000
    # Batched: at most batch_rows per transaction (inspections and the recipe record).
    assert 5 <= status.batches <= 60, status.batches
    assert len(commits) < 80
    # Storage knows each inspection's row by its id; the journal is gone once all is committed.
    assert first is not None and first.uuid in _uuids(db_url)
    assert not list((storage.journal_dir).glob("journal-*.jsonl"))


def test_writer_bench_commits_every_inspection_queued_and_replayed(tmp_path: Path) -> None:
    # What `aoi bench`'s storage figures rest on; the figures themselves are in
    # docs/benchmarks.md, never a test's threshold.
    url = f"sqlite:///{tmp_path / 'b.db'}"
    out = throughput(url, n=300, defects=5, folder=tmp_path)
    assert (out["inspections"], out["defects_each"]) == (300, 5)
    assert out["queued_inspections_per_s"] > 0 and out["replay_inspections_per_s"] > 0
    assert 1 <= out["batches"] < 300, "the queue is written in batches"
    p = out["publish_us"]
    assert 0 < p["p50"] <= p["p99"] <= p["max"]
    # Both passes (through the queue, then by journal replay) landed every row.
    assert _count(url) == 600
    assert _count(url, Defect) == 3000


def test_final_cycle_time_replaces_the_one_before_the_plc(
    sqlite_url: str, make_storage: StorageFactory, make_result: ResultFactory, wait: Wait
) -> None:
    a, b = make_result(cycle_ms=10.0), make_result(cycle_ms=11.0)
    with make_storage(sqlite_url) as storage:
        stored_a = storage.publish(a)
        storage.finish(replace(a, cycle_ms=14.5, over_budget=True))  # same batch
        stored_b = storage.publish(b)
        wait(lambda: storage.status().committed == 2, what="two commits")
        storage.finish(replace(b, cycle_ms=61.0, over_budget=True))  # a later batch: UPDATE
    with Database(sqlite_url) as db, db.session() as s:
        got = {str(i.uuid): (i.cycle_ms, i.over_budget) for i in s.scalars(select(Inspection))}
    assert got == {stored_a.uuid: (14.5, True), stored_b.uuid: (61.0, True)}


def test_storage_knows_recent_inspections_by_id(
    sqlite_url: str,
    make_storage: StorageFactory,
    make_result: ResultFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aoi.storage import storage as storage_module

    monkeypatch.setattr(storage_module, "STORED_KEEP", 3)
    a = make_result(cycle_ms=12.5)
    # The same id again, as a new pipeline after a recipe change counts from 1 again.
    again = replace(a, timestamp_utc=a.timestamp_utc + 1.0, serial="SN-again")
    with make_storage(sqlite_url) as storage:
        stored_a = storage.publish(a)
        stored_again = storage.publish(again)
        assert stored_a.uuid != stored_again.uuid
        assert storage.stored(a.inspection_id) == stored_again
        storage.finish(replace(again, cycle_ms=50.0))
        # a's final time, late (a slow bus): its id names the later inspection now; no row gets it.
        storage.finish(replace(a, cycle_ms=99.0))
        newer = [make_result() for _ in range(3)]
        for r in newer:
            storage.publish(r)
        assert storage.stored(a.inspection_id) is None  # only the 3 newest are remembered
        assert [storage.stored(r.inspection_id) is not None for r in newer] == [True] * 3
    with Database(sqlite_url) as db, db.session() as s:
        got = {str(i.uuid): i.cycle_ms for i in s.scalars(select(Inspection))}
    assert (got[stored_a.uuid], got[stored_again.uuid]) == (12.5, 50.0)


def test_recipes_seen_with_their_content(
    sqlite_url: str, make_storage: StorageFactory, make_result: ResultFactory, tmp_path: Path
) -> None:
    recipe = tmp_path / "board-a.toml"
    recipe.write_text('name = "board-a"\n', encoding="utf-8")
    with make_storage(sqlite_url) as storage:
        storage.note_recipe("board-a", "a" * 64, recipe)
        storage.publish(make_result(recipe_hash="a" * 64))
        storage.publish(make_result(recipe="board-b", recipe_hash="b" * 64))
    with Database(sqlite_url) as db, db.session() as s:
        seen = {r.name: r.content for r in s.scalars(select(RecipeSeen))}
    assert seen == {"board-a": 'name = "board-a"\n', "board-b": ""}


def _lock_sqlite(url: str) -> Callable[[], None]:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # the write lock, as another writer would hold it
    conn.execute("INSERT INTO audit_events (at, who, station_id, what) VALUES ('x','x','x','x')")

    def release() -> None:
        conn.execute("ROLLBACK")
        conn.close()

    return release


def _lock_postgresql(url: str, server: PgServer) -> Callable[[], None]:
    conn = server.connect(url)
    conn.execute("LOCK TABLE inspections IN ACCESS EXCLUSIVE MODE")

    def release() -> None:
        conn.rollback()
        conn.close()

    return release


@pytest.mark.slow  # the database stays locked for 3 s
def test_database_locked_for_seconds_loses_nothing_and_raises_the_alarm(
    db_url: str,
    make_storage: StorageFactory,
    make_result: ResultFactory,
    request: pytest.FixtureRequest,
    wait: Wait,
) -> None:
    storage = make_storage(db_url, busy_timeout_ms=200)
    with storage:
        storage.publish(make_result())
        wait(lambda: storage.status().committed == 1, what="first commit")
        if db_url.startswith("sqlite"):
            release = _lock_sqlite(db_url)
        else:
            release = _lock_postgresql(db_url, request.getfixturevalue("pg_server"))
        try:
            held = time.monotonic()
            # Every publish returns while the database is still locked.
            _publish_all(storage, [make_result() for _ in range(40)], 0.05)
            wait(lambda: not storage.status().ok, what="the database alarm")
            alarm = " ".join(storage.status().alarms)
            assert "is not taking records" in alarm
            assert str(storage.journal_dir) in alarm
            time.sleep(max(0.0, 3.0 - (time.monotonic() - held)))  # locked for 3 s in all
            assert storage.status().committed == 1
        finally:
            release()
        wait(lambda: storage.status().committed == 41, timeout_s=60, what="recovery")
        assert storage.status().ok
    assert storage.status().db_failures >= 1
    assert _count(db_url) == 41


def test_disk_full_simulated_keeps_records_in_the_journal_until_it_recovers(
    db_url: str,
    make_storage: StorageFactory,
    make_result: ResultFactory,
    write_fault: Callable[[Any], WriteFault],
    wait: Wait,
) -> None:
    storage = make_storage(db_url)
    fault = write_fault(storage)
    with storage:
        fault.on = True
        _publish_all(storage, [make_result() for _ in range(30)], 0.01)
        wait(lambda: fault.hits >= 2, what="failed writes")
        status = storage.status()
        assert "disk is full" in status.last_error or "No space left" in status.last_error
        assert any("not taking records" in a for a in status.alarms)
        assert status.committed == 0
        assert list(storage.journal_dir.glob("journal-*.jsonl"))
        fault.on = False
        wait(lambda: storage.status().committed == 30, timeout_s=60, what="recovery")
        assert storage.status().ok
    assert _count(db_url) == 30


def test_queue_overflow_spills_to_the_journal_and_is_replayed_from_it(
    sqlite_url: str,
    make_storage: StorageFactory,
    make_result: ResultFactory,
    write_fault: Callable[[Any], WriteFault],
    wait: Wait,
) -> None:
    storage = make_storage(sqlite_url, queue_size=16)
    fault = write_fault(storage)
    with storage:
        fault.on = True
        results = [make_result() for _ in range(100)]
        uuids = {storage.publish(results[0]).uuid}
        wait(lambda: fault.hits >= 1, what="a failed write")
        # The writer is now retrying with backoff and reads nothing: the queue fills up.
        _publish_all(storage, results[1:])
        uuids |= {_stored_uuid(storage, r) for r in results[1:]}
        status = storage.status()
        assert status.queue_overflows >= 99 - 16
        assert any("records behind" in a for a in status.alarms)
        fault.on = False
        wait(lambda: storage.status().committed == 100, timeout_s=60, what="catch-up")
        wait(lambda: storage.status().ok, what="alarms cleared")
    assert _uuids(sqlite_url) == uuids


def test_journal_replay_at_start_is_complete_and_idempotent(
    db_url: str,
    make_storage: StorageFactory,
    make_result: ResultFactory,
    write_fault: Callable[[Any], WriteFault],
    tmp_path: Path,
) -> None:
    # A run whose database refused every write: it stops with everything in the journal.
    first = make_storage(db_url, stop_timeout_s=0.3)
    fault = write_fault(first)
    with first:
        fault.on = True
        results = [make_result(Verdict.NG, 3) for _ in range(120)]
        _publish_all(first, results)
        uuids = {_stored_uuid(first, r) for r in results}
    assert first.status().committed == 0
    assert _count(db_url) == 0
    saved = {p.name: p.read_bytes() for p in first.journal_dir.glob("journal-*.jsonl")}
    assert saved

    with make_storage(db_url) as second:
        pass
    assert second.status().replayed == 120
    assert _uuids(db_url) == uuids
    assert _count(db_url, Defect) == 360
    assert not list(second.journal_dir.glob("journal-*.jsonl"))

    # The same journal again, checkpoint lost: replay skips what the database holds.
    for name, data in saved.items():
        (second.journal_dir / name).write_bytes(data)
    (second.journal_dir / "checkpoint.json").unlink()
    with make_storage(db_url) as third:
        pass
    assert third.status().replayed == 0
    assert _count(db_url) == 120


def _journal_with(folder: Path, records: list[dict[str, Any]], tail: bytes = b"") -> None:
    journal = Journal(folder)
    journal.open()
    for rec in records:
        journal.append(rec)
    journal.close()
    if tail:
        [segment] = folder.glob("journal-*.jsonl")
        with segment.open("ab") as f:
            f.write(tail)


def test_replay_skips_a_torn_last_line_and_sets_refused_records_aside(
    sqlite_url: str, make_storage: StorageFactory, make_result: ResultFactory, tmp_path: Path
) -> None:
    good = [inspection_record(make_result(), new_uuid(), "s1", None, None) for _ in range(5)]
    bad = {**good[0], "uuid": str(uuid.uuid4()), "verdict": "MAYBE"}  # violates a CHECK
    _journal_with(tmp_path / "journal", [*good[:2], bad, *good[2:]], tail=b'{"t":"insp')
    with make_storage(sqlite_url) as storage:
        pass
    status = storage.status()
    assert _uuids(sqlite_url) == {r["uuid"] for r in good}
    assert status.replayed == 5
    assert status.rejected == 2  # the refused record and the torn line
    assert any("refused by the database" in a for a in status.alarms)
    [refused] = read_rejected(tmp_path / "journal" / "rejected.jsonl")
    assert refused["uuid"] == bad["uuid"]
    assert "verdict" in refused["rejected"] or "CHECK" in refused["rejected"]


def test_replay_of_version_1_records_names_the_error_kind_by_its_prefix(
    sqlite_url: str, make_storage: StorageFactory, make_result: ResultFactory, tmp_path: Path
) -> None:
    # A journal left by a station before record version 2: no error_kind, no verdict_reason.
    texts = {
        "camera timeout: no frame within 2 s": "camera_timeout",
        "bad frame: b.png is not a readable image": "bad_frame",
        "registration correlation must be >= 0.60, got 0.2": "other",
    }
    old = []
    for text_, kind in texts.items():
        rec = inspection_record(make_result(Verdict.ERROR), new_uuid(), "s1", None, None)
        del rec["error_kind"], rec["verdict_reason"]
        old.append(({**rec, "v": 1, "error": text_}, kind))
    ok = inspection_record(make_result(Verdict.OK), new_uuid(), "s1", None, None)
    del ok["error_kind"], ok["verdict_reason"]
    old.append(({**ok, "v": 1}, "none"))
    _journal_with(tmp_path / "journal", [rec for rec, _ in old])
    with make_storage(sqlite_url) as storage:
        pass
    assert storage.status().replayed == 4
    with Database(sqlite_url) as db, db.session() as s:
        got = {str(i.uuid): (i.error_kind, i.verdict_reason) for i in s.scalars(select(Inspection))}
    assert got == {rec["uuid"]: (kind, "") for rec, kind in old}


def test_an_inspection_the_journal_refuses_is_refused_not_kept_in_memory(
    sqlite_url: str,
    make_storage: StorageFactory,
    make_result: ResultFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No verdict may reach the PLC that is not durably journaled (tests/faults has the real
    full disk): publish raises, so the pipeline answers the part ERROR instead."""
    from aoi.errors import RecordNotDurable
    from aoi.storage.errors import JournalError

    with make_storage(sqlite_url) as storage:
        storage.publish(make_result())  # recipe and first record journaled normally

        def refuse(record: dict[str, Any]) -> Any:
            msg = "journal segment x cannot be written ([Errno 28] No space left on device)"
            raise JournalError(msg)

        monkeypatch.setattr(storage.journal, "append", refuse)
        with pytest.raises(RecordNotDurable, match="cannot record the verdict"):
            storage.publish(make_result())
        assert any("cannot be written" in a for a in storage.status().alarms)
        monkeypatch.undo()
        storage.publish(make_result())
        assert not any("cannot be written" in a for a in storage.status().alarms)
    status = storage.status()
    assert (status.journal_failures, status.published, status.committed) == (1, 2, 2)
    assert _count(sqlite_url) == 2


@pytest.mark.integration
def test_the_database_away_at_start_up_is_retried(
    make_storage: StorageFactory,
    make_result: ResultFactory,
    pg_server: PgServer,
    wait: Wait,
) -> None:
    import psycopg

    url = pg_server.new_database()
    name = url.rsplit("/", 1)[1]
    admin = psycopg.connect(
        f"host=127.0.0.1 port={pg_server.port} user=postgres dbname=postgres", autocommit=True
    )
    with admin:
        admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        storage = make_storage(url)
        with storage:
            # The start-up alarm, or the writer's own once its first retry has failed too (on a
            # loaded machine the retry can come before this line).
            alarms = storage.status().alarms
            assert any(
                name in a and ("unavailable at start-up" in a or "is not taking records" in a)
                for a in alarms
            ), alarms
            storage.publish(make_result())
            time.sleep(0.3)
            admin.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
            wait(lambda: storage.status().committed == 1, timeout_s=60, what="migration + commit")
            assert storage.status().ok
    assert _count(url) == 1


def test_publish_outside_the_with_block_is_an_error(
    sqlite_url: str, make_storage: StorageFactory, make_result: ResultFactory
) -> None:
    storage = make_storage(sqlite_url)
    with pytest.raises(StorageError, match="outside its with block"):
        storage.publish(make_result())


def test_publish_from_two_threads_keeps_journal_order(
    sqlite_url: str, make_storage: StorageFactory, make_result: ResultFactory
) -> None:
    # publish on the cycle's thread, finish on the EventBus's: both append to one journal. As in
    # the station, a result reaches the finisher only after publish returned (the pipeline hands
    # it to the bus after its sinks), so each cycle record follows its inspection's record.
    results = [make_result() for _ in range(200)]
    handed: queue.Queue[InspectionResult | None] = queue.Queue()
    with make_storage(sqlite_url) as storage:

        def finisher() -> None:
            while (r := handed.get()) is not None:
                storage.finish(replace(r, cycle_ms=33.0))

        t = threading.Thread(target=finisher)
        t.start()
        try:
            for r in results:
                storage.publish(r)
                handed.put(r)
        finally:
            handed.put(None)
            t.join()
    with Database(sqlite_url) as db, db.session() as s:
        assert list(s.scalars(select(Inspection.cycle_ms))) == [33.0] * 200
    assert storage.status().ok


def test_numpy_numbers_from_the_stages_are_recorded(
    sqlite_url: str, make_storage: StorageFactory, make_result: ResultFactory
) -> None:
    import numpy as np

    from aoi.storage.tables import Defect as DefectRow
    from aoi.types import Defects

    found = Defects(
        np.array([[1, 2, 3, 4]], np.int32),
        np.array([2], np.uint8),
        np.array([0.5], np.float32),
        np.array([4], np.int64),
    )
    r = replace(make_result(), defects=found, stages_ms={"infer": np.float32(7.5)})
    with make_storage(sqlite_url) as storage:
        storage.publish(r)
    assert storage.status().ok, storage.status().alarms
    with Database(sqlite_url) as db, db.session() as s:
        [row] = s.scalars(select(DefectRow)).all()
        stages = s.scalars(select(Inspection.stages_ms)).one()
    assert (row.class_id, row.x1_px, row.area_px) == (2, 3, 4)
    assert stages == {"infer": 7.5}
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        kinds = conn.execute("SELECT typeof(class_id), typeof(x0_px), typeof(score) FROM defects")
        assert kinds.fetchall() == [("integer", "integer", "real")]  # not numpy's bytes as blobs


def test_two_storages_on_one_journal_are_refused(
    sqlite_url: str, make_storage: StorageFactory
) -> None:
    from aoi.storage.errors import JournalError

    with make_storage(sqlite_url):
        second = make_storage(sqlite_url)
        with pytest.raises(JournalError, match=r"in use by another process \(pid \d+\)"), second:
            pass
    with make_storage(sqlite_url):  # free again once the first has stopped
        pass


def test_open_storage_and_its_summary_for_aoi_run(
    sqlite_url: str, make_result: ResultFactory, tmp_path: Path
) -> None:
    import argparse

    from aoi.config import StationConfig, StorageConfig
    from aoi.storage.cli import (
        add_db_argument,
        format_storage_summary,
        open_storage,
        storage_summary,
    )

    parser = argparse.ArgumentParser()
    add_db_argument(parser)
    args = parser.parse_args(["--db", sqlite_url])
    station = StationConfig(
        station_id="line-3",
        storage=StorageConfig(journal_dir=tmp_path / "j", archive_dir=tmp_path / "a"),
    )
    with open_storage(args.db, station) as storage:
        for _ in range(5):
            storage.publish(make_result())
    summary = storage_summary(storage)
    assert summary["database"] == sqlite_url
    assert (summary["published"], summary["committed"], summary["pending"]) == (5, 5, 0)
    assert summary["alarms"] == []
    assert "committed 5 of 5" in format_storage_summary(summary)
    assert find_station(sqlite_url) == {"line-3"}


def find_station(url: str) -> set[str]:
    with Database(url) as db, db.session() as s:
        return set(s.scalars(select(Inspection.station_id)))


def test_the_last_inspection_id_survives_pruning_and_an_unreadable_database(
    tmp_path: Path,
) -> None:
    """Ids go on after a restart even when the segments with the last ids are gone and the
    database cannot be read (a disk that filled while the station was down)."""
    from aoi.storage.ids import last_inspection_id

    folder = tmp_path / "journal"
    journal = Journal(folder)
    journal.open()
    for n in (5, 9, 7):
        journal.append({"t": "inspection", "station_id": "s1", "inspection_id": n})
    journal.close(committed=journal.position)  # all committed: its segments are pruned
    assert journal.segments() == []
    again = Journal(folder)
    again.open()
    try:
        unreadable = Database(f"sqlite:///{tmp_path / 'no-such-folder' / 'aoi.db'}")
        with unreadable as db:
            assert last_inspection_id(db, again, "s1") == 9
    finally:
        again.close()


def test_line_answers_land_beside_their_inspections_in_one_batch(
    db_url: str, make_storage: StorageFactory, make_result: ResultFactory
) -> None:
    """A batch that mixes inspections with and without the line's answer (the PLC answered
    some before the writer woke up) commits them all, with the answers on their rows."""
    from aoi.types import LineAnswer

    results = [make_result(Verdict.OK) for _ in range(6)]
    storage = make_storage(db_url, flush_interval_ms=500, batch_rows=1000)
    with storage:
        for n, r in enumerate(results):
            storage.publish(r)
            if n % 2 == 0:
                storage.record_line(LineAnswer(r.inspection_id, Verdict.ERROR, "LINK_LOST"))
        # One answer before its inspection is published (the link gave up on the part first).
        late = make_result(Verdict.NG)
        storage.record_line(LineAnswer(late.inspection_id, Verdict.ERROR, "INSPECTION_TIMEOUT"))
        storage.publish(late)
    status = storage.status()
    assert (status.published, status.committed, status.lost) == (7, 7, 0)
    with Database(db_url) as db, db.session() as s:
        rows = {
            i: (v, lv, le)
            for i, v, lv, le in s.execute(
                select(
                    Inspection.inspection_id,
                    Inspection.verdict,
                    Inspection.line_verdict,
                    Inspection.line_error,
                )
            )
        }
    expected = {
        r.inspection_id: ("OK", "ERROR", "LINK_LOST") if n % 2 == 0 else ("OK", None, "")
        for n, r in enumerate(results)
    }
    expected[late.inspection_id] = ("NG", "ERROR", "INSPECTION_TIMEOUT")
    assert rows == expected
