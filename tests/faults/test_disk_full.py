"""A full disk, on a real tmpfs filled to the last byte (issue 12's fault matrix)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_helpers import fill
from sqlalchemy import select

from aoi.app.rig import Rig
from aoi.app.station import Station, StationOptions, critical_sinks
from aoi.cli import main
from aoi.config import StationConfig, StorageConfig
from aoi.recipe import load_recipe
from aoi.storage import Storage
from aoi.storage.db import Database
from aoi.storage.tables import Inspection
from aoi.types import ErrorKind, InspectionResult, Verdict
from plc.protocol import ErrorCode

pytestmark = pytest.mark.fault


def test_starting_on_a_full_disk_is_one_line_naming_the_folder_and_its_free_space(
    full_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = full_disk / "journal"
    station = tmp_path / "station.toml"
    station.write_text(
        "[storage]\n"
        f'journal_dir = "{journal.as_posix()}"\n'
        f'archive_dir = "{(full_disk / "archive").as_posix()}"\n'
        f'database_url = "sqlite:///{(full_disk / "aoi.db").as_posix()}"\n'
    )
    code = main(["run", "--cycles", "1", "--plc", "none", "--station", str(station)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert f"journal {journal} cannot be written" in lines[0]
    assert "free on its disk" in lines[0]
    assert "Traceback" not in err


class _LineRecorder:
    """What the PLC would hear: the verdict sink after the journal."""

    def __init__(self) -> None:
        self.heard: list[InspectionResult] = []

    def publish(self, result: InspectionResult) -> None:
        self.heard.append(result)


def test_a_disk_that_fills_while_running_answers_error_and_loses_no_verdict(
    small_disk: Path,
    tmp_path: Path,
    make_recipe: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No verdict reaches the line that is not in the journal; the journal comes back by itself."""
    loaded = load_recipe(make_recipe(registration="none"))
    config = StorageConfig(journal_dir=small_disk / "journal", archive_images=False)
    url = f"sqlite:///{(tmp_path / 'aoi.db').as_posix()}"
    line = _LineRecorder()
    with (
        Storage(config, station_id="s1", database_url=url) as storage,
        Rig(loaded, StationConfig(), source_spec="synthetic", threads=1) as rig,
    ):
        pipeline = rig.pipeline_for(loaded, critical_sinks(storage, line))

        def inspect(n: int) -> list[InspectionResult]:
            return [pipeline.inspect(rig.source.grab(5.0)) for _ in range(n)]

        before = inspect(4)
        filler = fill(small_disk)
        during = inspect(12)  # the last page the journal holds may take a record or two
        assert not storage.journal_ready(), "the station must not take parts on a full disk"
        filler.unlink()
        assert storage.journal_ready(), "room again: ready by itself"
        after = inspect(4)
        alarms = storage.status().alarms
    health = storage.status()
    assert all(r.verdict is not Verdict.ERROR for r in before + after)
    refused = [i for i, r in enumerate(during) if r.verdict is Verdict.ERROR]
    assert refused, "a full journal disk answers parts ERROR"
    # From the first refusal on, every part is refused until there is room again.
    assert refused == list(range(refused[0], len(during)))
    assert {r.error_kind for r in during[refused[0] :]} == {ErrorKind.STORAGE}
    assert all("cannot record the verdict" in r.error for r in during[refused[0] :])
    everything = before + during + after
    assert [r.inspection_id for r in line.heard] == [r.inspection_id for r in everything]
    # Every verdict the line heard as OK/NG/REVIEW is in the database; nothing else is.
    with Database(url) as db, db.session() as s:
        rows = dict(s.execute(select(Inspection.inspection_id, Inspection.verdict)).all())
    kept = {r.inspection_id: r.verdict.name for r in everything if r.verdict is not Verdict.ERROR}
    assert rows == kept
    assert not any("cannot be written" in a for a in alarms), alarms
    # The log tells the episode once, and counts only what happened: a refused record is cut
    # off whole, so no replay finds a "torn" or "damaged" line and nothing is set aside.
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum(m.endswith("parts are answered ERROR until it can") for m in said) == 1, said
    assert sum("written again" in m for m in said) == 1, said
    assert not any("torn" in m or "damaged" in m for m in said), said
    assert health.rejected == 0 and health.lost == 0
    assert "journal-damaged" not in " ".join(health.alarms)


def _until(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s  # a hang guard, not a speed limit
    while not check():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.02)


def _soft_plc_station(
    tmp_path: Path, make_recipe: Callable[..., Path], *storage: str
) -> StationOptions:
    """A station with the soft PLC whose ``[storage]`` section has the lines given."""
    station_toml = tmp_path / "station.toml"
    station_toml.write_text("\n".join(["[storage]", *storage, ""]))
    return StationOptions(
        recipe=str(make_recipe(registration="none")),
        station=str(station_toml),
        data_dir=tmp_path / "data",
        plc="sim",
        threads=1,
    )


def test_the_plc_sees_not_ready_while_the_journal_disk_is_full_and_ready_when_it_has_room(
    small_disk: Path, tmp_path: Path, make_recipe: Callable[..., Path]
) -> None:
    options = _soft_plc_station(tmp_path, make_recipe, f'journal_dir = "{small_disk / "journal"}"')
    with Station(options) as station:
        assert station.plc is not None and station.plc.sim is not None
        link, report = station.plc.link, station.plc.sim.report
        assert station.start("test")
        _until(lambda: report.acked >= 3, "answered the first parts")
        filler = fill(small_disk)
        _until(
            lambda: (
                link.health().error_code is ErrorCode.STORAGE_UNAVAILABLE
                and not link.health().ready
            ),
            "held NOT READY with STORAGE_UNAVAILABLE",
        )
        parts_while_full = report.parts
        time.sleep(0.5)  # a PLC that asks now finds the station not ready
        assert report.parts == parts_while_full, "no part is taken while the disk is full"
        filler.unlink()
        _until(lambda: link.health().ready, "ready again by itself")
        acked = report.acked
        _until(lambda: report.acked >= acked + 3, "answered parts again")
        # The episode is in the alarm history, raised and cleared (storage is its source).
        assert station.alarms is not None
        station.alarms.flush()
        journal = [r for r in station.alarms.recent() if "cannot be written" in r.title]
        assert journal and journal[0].source == "Database", journal
        assert journal[0].cleared_at is not None
        station.stop("test")
        assert station.wait(60.0)
    summary = station.summary()
    heard = report.verdicts
    kept = sum(n for verdict, n in heard.items() if verdict != "ERROR")
    # READY fell as the journal refused its first part: that part alone was answered ERROR.
    assert heard["ERROR"] == 1, heard
    # Every verdict the PLC heard as OK / NG / REVIEW is in the database: nothing was lost.
    assert summary["storage"]["committed"] == kept
    assert summary["storage"]["pending"] == 0


def test_a_restart_into_a_full_disk_takes_no_part_and_claims_nothing(
    small_disk: Path, tmp_path: Path, make_recipe: Callable[..., Path]
) -> None:
    """An existing data folder on a disk that filled while the station was down."""
    options = _soft_plc_station(
        tmp_path,
        make_recipe,
        f'journal_dir = "{small_disk / "journal"}"',
        f'database_url = "sqlite:///{small_disk / "aoi.db"}"',
        "archive_images = false",
    )
    with Station(options) as station:
        assert station.plc is not None and station.plc.sim is not None
        report = station.plc.sim.report
        assert station.start("test")
        _until(lambda: report.acked >= 3, "answered the first parts")
        station.stop("test")
        assert station.wait(60.0)
    filler = fill(small_disk)
    with Station(options) as station:
        assert station.plc is not None and station.plc.sim is not None
        link, report = station.plc.link, station.plc.sim.report
        assert station.start("test")
        time.sleep(0.5)  # a PLC that asks now finds the station not ready
        assert report.parts == 0, "no part is taken on a full disk, not even the first"
        assert link.health().error_code is ErrorCode.STORAGE_UNAVAILABLE
        assert station.storage is not None and station.storage.status().published == 0
        filler.unlink()
        _until(lambda: report.acked >= 3, "answered parts once there is room")
        station.stop("test")
        assert station.wait(60.0)
    summary = station.summary()["storage"]
    assert report.verdicts.get("ERROR", 0) == 0, report.verdicts
    # The counters claim only what happened: every published record is committed.
    assert summary["published"] == summary["committed"] == report.acked
    assert summary["pending"] == summary["lost"] == 0
    with Database(f"sqlite:///{(small_disk / 'aoi.db').as_posix()}") as db, db.session() as s:
        ids = list(s.scalars(select(Inspection.inspection_id)))
    assert len(ids) == len(set(ids)), "inspection ids are unique across the restart"
