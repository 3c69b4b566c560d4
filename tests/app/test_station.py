"""The one assembly (aoi.app.station): what every front end opens, with its real parts.

A soft PLC on 127.0.0.1, a SQLite file and the tiny difference model; nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from aoi.app.station import Station, StationOptions, critical_sinks
from aoi.errors import AoiError
from aoi.runner import RunState
from aoi.storage.db import Database
from aoi.storage.reviews import audit_events
from aoi.storage.tables import Inspection
from aoi.types import InspectionResult

pytestmark = pytest.mark.integration

RecipeFactory = Callable[..., Path]


class _Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def publish(self, result: InspectionResult) -> None:
        self.log.append(self.name)


def test_the_journal_comes_before_the_plc_and_absent_sinks_drop_out() -> None:
    log: list[str] = []
    journal, plc = _Recorder("journal", log), _Recorder("plc", log)
    assert critical_sinks(journal, plc) == [journal, plc]
    assert critical_sinks(None, plc) == [plc]
    assert critical_sinks(journal, None) == [journal]
    assert critical_sinks(None, None) == []


def _options(recipe: Path, tmp_path: Path, **more: object) -> StationOptions:
    values: dict[str, object] = {
        "recipe": str(recipe),
        "data_dir": tmp_path / "data",
        "plc": "sim",
        "threads": 1,
    }
    return StationOptions(**{**values, **more})  # type: ignore[arg-type]


def test_a_station_runs_its_cycles_through_journal_then_plc_and_reports_them(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    seen: list[int] = []
    options = _options(make_recipe(registration="none"), tmp_path, sim_parts=6)
    with Station(options, on_result=[lambda r: seen.append(r.inspection_id)]) as station:
        rig = station.rig
        assert rig is not None and station.storage is not None and station.plc is not None
        # The pipeline hands each verdict to the journal first, then to the PLC.
        assert rig.pipeline.sinks == [station.storage, station.plc.link]
        assert station.start("test", cycles=6)
        assert station.wait(60.0), "six triggered parts were inspected"
        assert station.runner is not None and station.runner.state is RunState.STOPPED
    summary = station.summary()
    assert summary["cycles"] == 6 and len(seen) == 6
    assert summary["plc"]["acked"] == 6 and summary["plc"]["missed"] == 0
    assert summary["storage"]["committed"] == 6 and summary["storage"]["pending"] == 0
    assert summary["recipe"] == "test-board"
    assert station.counters.snapshot().inspected == 6


def test_a_benchmark_station_keeps_no_log_and_drives_no_plc(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    options = _options(make_recipe(), tmp_path, plc=None, default_plc="none", keep_log=False)
    with Station(options) as station:
        assert station.storage is None and station.plc is None
        assert station.start(cycles=3)
        assert station.wait(60.0)
    summary = station.summary()
    assert summary["cycles"] == 3
    assert "storage" not in summary and "plc" not in summary
    assert not (tmp_path / "data").exists(), "nothing was written to the data folder"


def test_a_recipe_that_does_not_load_leaves_the_station_up_and_says_why(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    broken = make_recipe(model=tmp_path / "missing.onnx")
    with Station(_options(broken, tmp_path)) as station:
        assert station.rig is None and station.rig_error is not None
        assert "missing.onnx" in str(station.rig_error)
        assert not station.start("operator"), "nothing to inspect with"
        assert station.storage is not None and station.plc is not None, "the rest is up"


def test_activation_needs_a_stopped_station_and_is_audited(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    first = make_recipe(registration="none")
    second = make_recipe(name="test-board-b", registration="none")
    with Station(_options(first, tmp_path)) as station:
        assert station.start("operator")
        with pytest.raises(AoiError, match="stop the station"):
            station.activate(second, "engineer")
        station.stop("operator")
        assert station.wait(30.0)
        loaded = station.activate(second, "engineer")
        assert station.active_recipe is loaded
        assert station.storage is not None
        since = datetime.now(UTC) - timedelta(minutes=5)
        events = audit_events(station.storage.db, since)
    v = loaded.recipe.version
    changes = [(e.who, e.old_value, e.new_value) for e in events if e.what == "recipe.active"]
    assert changes == [("engineer", f"test-board v{v}", f"test-board-b v{v}")]
    states = [(e.who, e.new_value) for e in reversed(events) if e.what == "station.state"]
    assert states == [("operator", "running"), ("operator", "stopped")]


@pytest.mark.fault
@pytest.mark.parametrize("plc", ["sim", "none"])
def test_a_restarted_station_numbers_on_after_its_last_inspection(
    make_recipe: RecipeFactory, tmp_path: Path, plc: str
) -> None:
    """Ids are unique for the life of the database: a restart (or a recipe change) goes on."""
    recipe = make_recipe(registration="none")
    for _ in range(2):
        with Station(_options(recipe, tmp_path, plc=plc, sim_parts=3)) as station:
            assert station.start("test", cycles=3)
            assert station.wait(60.0)
    url = f"sqlite:///{(tmp_path / 'data' / 'aoi.db').as_posix()}"
    with Database(url) as db, db.session() as s:
        ids = sorted(s.scalars(select(Inspection.inspection_id)))
    assert ids == [1, 2, 3, 4, 5, 6]


def test_a_restart_seeds_over_budget_and_per_recipe_counts_on_the_shifts_basis(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    """After a restart "over budget this shift" and the per-recipe yields count the same
    boards of the same shift as the board count does (one query of the database)."""
    recipe = make_recipe(registration="none")
    # A budget of 0.5 ms: (nearly) every board is over it, so the seeded number is not 0.
    recipe.write_text(recipe.read_text().replace("cycle_budget_ms = 50.0", "cycle_budget_ms = 0.5"))
    with Station(_options(recipe, tmp_path, sim_parts=4)) as station:
        assert station.start("test", cycles=4)
        assert station.wait(60.0)
        before = station.counters.snapshot()
    with Station(_options(recipe, tmp_path)) as again:
        seeded = again.counters.snapshot()
    url = f"sqlite:///{(tmp_path / 'data' / 'aoi.db').as_posix()}"
    with Database(url) as db, db.session() as s:
        rows = list(s.execute(select(Inspection.recipe_name, Inspection.over_budget)))
    assert before.inspected == seeded.inspected == len(rows) == 4
    over = sum(o for _, o in rows)
    assert over > 0
    assert before.over_budget == seeded.over_budget == over
    assert seeded.by_recipe == before.by_recipe
    assert [(name, boards) for name, boards, _ in seeded.by_recipe] == [("test-board", 4)]
