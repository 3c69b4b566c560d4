"""The station with ``[mqtt]`` in its config: soft PLC, SQLite, real mosquitto, real cycle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from plant_helpers import Mosquitto, wait_for
from sqlalchemy import select
from test_mqtt import Subscriber

from aoi.app.station import Station, StationOptions
from aoi.storage.queries import record_review
from aoi.storage.tables import Defect

pytestmark = pytest.mark.integration


def test_a_station_publishes_each_inspection_with_the_plcs_verdict_and_its_state(
    make_recipe: Callable[..., Path], tmp_path: Path, broker: Mosquitto
) -> None:
    station_toml = tmp_path / "station.toml"
    station_toml.write_text(f'station_id = "aoi-7"\n[mqtt]\nurl = "{broker.url}"\n')
    inspections = Subscriber(broker.port, "aoi/aoi-7/inspection", client_id="insp")
    states = Subscriber(broker.port, "aoi/aoi-7/state", client_id="state")
    reviews = Subscriber(broker.port, "aoi/aoi-7/review", client_id="review")
    options = StationOptions(
        recipe=str(make_recipe(registration="none")),
        station=str(station_toml),
        data_dir=tmp_path / "data",
        plc="sim",
        threads=1,
        sim_parts=5,
    )
    try:
        with Station(options) as station:
            assert station.start("test", cycles=5)
            assert station.wait(60.0)
            wait_for(lambda: len(inspections.got) >= 5, what="five inspections on MQTT")
            wait_for(lambda: [s["state"] for s in states.got][-1:] == ["stopped"], what="stopped")
            # An operator's decision, as the review screen records it: on the review topic.
            wait_for(lambda: station.storage.health.snapshot().committed >= 5, what="commit")
            with station.storage.db.session() as s:
                defect = s.scalars(select(Defect.id).order_by(Defect.id)).first()
            assert defect is not None, "the synthetic boards have defects"
            record_review(station.storage.db, defect, "op1", "DefectRejected", "dust")
            wait_for(lambda: len(reviews.got) == 1, what="the review on MQTT")
    finally:
        inspections.close()
        states.close()
        reviews.close()
    assert (reviews.got[0]["defect_id"], reviews.got[0]["reviewer"]) == (defect, "op1")
    assert [m["inspection_id"] for m in inspections.got] == list(range(1, 6))
    assert all(m["line_verdict"] == m["verdict"] for m in inspections.got)
    assert states.got[-1]["recipe"] == "test-board"
    assert "running" in [s["state"] for s in states.got]
