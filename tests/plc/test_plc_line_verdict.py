"""The defect log keeps the verdict the line received beside the inspection's own.

A real link (station as server) on 127.0.0.1, a hand-driven PLC and a real SQLite defect log:
the test thread plays the cycle, publishing each result to the journal first and then to the
link, as the station's pipeline does. Each case is a link fault that tells the line ERROR (or
nothing) where the inspection said OK or NG.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from test_plc_link import CLR, EN, FAST, HandPlc, inspection, station_server, take_part

from aoi.config import PlcConfig, StorageConfig
from aoi.storage import Storage
from aoi.storage.db import Database
from aoi.storage.queries import Window, line_answers
from aoi.storage.report import build_report, render
from aoi.storage.tables import Inspection
from aoi.types import Verdict
from plc.link import StationLink
from plc.registers import ErrorCode, StatusBit

pytestmark = [pytest.mark.integration, pytest.mark.fault]


@contextmanager
def logged_station(
    tmp_path: Path, settings: PlcConfig = FAST
) -> Iterator[tuple[StationLink, HandPlc, Storage]]:
    config = StorageConfig(
        journal_dir=tmp_path / "journal",
        archive_images=False,
        flush_interval_ms=20,
        min_free_gb=0.0,
    )
    url = f"sqlite:///{tmp_path / 'aoi.db'}"
    with (
        Storage(config, station_id="s1", database_url=url, data_dir=tmp_path) as storage,
        station_server(settings) as (link, plc),
    ):
        link.on_answer = storage.record_line  # as aoi.app.station wires it
        yield link, plc, storage


def _rows(tmp_path: Path) -> list[tuple[int, str, str | None, str]]:
    url = f"sqlite:///{tmp_path / 'aoi.db'}"
    with (
        Storage(
            StorageConfig(journal_dir=tmp_path / "journal", archive_images=False, min_free_gb=0.0),
            station_id="s1",
            database_url=url,
            data_dir=tmp_path,
        ) as storage,
        storage.db.session() as s,
    ):
        rows = s.execute(
            select(
                Inspection.part_sequence,
                Inspection.verdict,
                Inspection.line_verdict,
                Inspection.line_error,
            ).order_by(Inspection.part_sequence)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _publish(link: StationLink, storage: Storage, trigger: object, verdict: Verdict) -> None:
    result = inspection(trigger, verdict)  # type: ignore[arg-type]
    storage.publish(result)  # the journal first, as the pipeline's sinks run
    link.publish(result)


def _settle(link: StationLink) -> None:
    # The link's thread dispatches the answer on its next poll; then the journal has it.
    deadline = time.monotonic() + 5
    before = sum(link.line_verdicts.values())
    while time.monotonic() < deadline and sum(link.line_verdicts.values()) == before:
        time.sleep(0.01)


def test_a_part_answered_normally_stores_the_same_verdict_for_the_line(tmp_path: Path) -> None:
    with logged_station(tmp_path) as (link, plc, storage):
        trigger = take_part(link, plc, 1)
        _publish(link, storage, trigger, Verdict.NG)
        plc.wait_bits(StatusBit.RESULTS_VALID)
        _settle(link)
    assert _rows(tmp_path) == [(1, "NG", "NG", "")]


def test_an_inspection_timeout_stores_ok_for_the_board_and_error_for_the_line(
    tmp_path: Path,
) -> None:
    settings = FAST.model_copy(update={"busy_timeout_ms": 100})
    with logged_station(tmp_path, settings) as (link, plc, storage):
        trigger = take_part(link, plc, 7)
        out = plc.wait_bits(StatusBit.RESULTS_VALID)  # the link gave up on the part
        assert out.error_code == ErrorCode.INSPECTION_TIMEOUT
        _publish(link, storage, trigger, Verdict.OK)  # the late result: stale for the line
    assert _rows(tmp_path) == [(7, "OK", "ERROR", "INSPECTION_TIMEOUT")]


def test_a_heartbeat_lost_mid_part_stores_the_override(tmp_path: Path) -> None:
    settings = FAST.model_copy(update={"require_plc_heartbeat": True})
    with logged_station(tmp_path, settings) as (link, plc, storage):
        plc.write(EN, plc_heartbeat=1)
        trigger = take_part(link, plc, 3)  # the PLC's heartbeat stops here
        plc.wait_for("PLC_HEARTBEAT_LOST", lambda o: o.error_code == ErrorCode.PLC_HEARTBEAT_LOST)
        _publish(link, storage, trigger, Verdict.OK)
        out = plc.wait_bits(StatusBit.RESULTS_VALID)
        assert out.verdict == Verdict.ERROR.value  # never a stale OK under the fault
        _settle(link)
        summary = dict(link.line_verdicts)
    assert _rows(tmp_path) == [(3, "OK", "ERROR", "PLC_HEARTBEAT_LOST")]
    assert summary == {"ERROR": 1}


def test_a_result_withdrawn_by_clear_error_is_stored_as_never_collected(tmp_path: Path) -> None:
    with logged_station(tmp_path) as (link, plc, storage):
        trigger = take_part(link, plc, 5)
        _publish(link, storage, trigger, Verdict.NG)
        plc.wait_bits(StatusBit.RESULTS_VALID)
        plc.write(EN, CLR)  # a restarted PLC program clears without acknowledging
        plc.wait_bits(off=(StatusBit.RESULTS_VALID,))
        _settle(link)
        plc.write(EN)
    rows = _rows(tmp_path)
    assert rows == [(5, "NG", None, "RESULT_DISCARDED")]


def test_the_report_shows_the_line_beside_the_inspections(tmp_path: Path) -> None:
    # One part answered as inspected, then (a restart with a short inspection timeout, the
    # same defect log) one the link gave up on: no timing of this test decides which is which.
    with logged_station(tmp_path) as (link, plc, storage):
        trigger = take_part(link, plc, 1)
        _publish(link, storage, trigger, Verdict.NG)
        plc.wait_bits(StatusBit.RESULTS_VALID)
        _settle(link)
    settings = FAST.model_copy(update={"busy_timeout_ms": 100})
    with logged_station(tmp_path, settings) as (link, plc, storage):
        link.continue_ids_after(1)
        trigger = take_part(link, plc, 2)
        plc.wait_bits(StatusBit.RESULTS_VALID)  # the link gave up on the part
        _publish(link, storage, trigger, Verdict.OK)
    with Database(f"sqlite:///{tmp_path / 'aoi.db'}") as db:
        window = Window(datetime(1970, 1, 1, tzinfo=UTC))  # the results carry no time
        answers = line_answers(db, window)
        text = render(build_report(db, window))
    assert answers.received == {"NG": 1, "ERROR": 1}
    assert answers.overridden == {"INSPECTION_TIMEOUT": 1}
    assert "line         received ERROR 1  NG 1" in text
    assert "answered ERROR by a link fault: INSPECTION_TIMEOUT 1" in text
