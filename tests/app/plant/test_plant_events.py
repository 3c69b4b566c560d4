"""Review decisions and station states on the plant publishers, and a CFX broker outage.

Against real peers the tests start: a private mosquitto (conftest) with a paho subscriber, and
python-qpid-proton's Container as the AMQP 1.0 peer (plant_helpers.AmqpPeer). The CFX shapes
follow the SDK's C# classes (IPCConnectedFactoryExchange/CFX): CFX/Structures/Defect.cs
(``Verification``, ``VerificationDetail``), CFX/Structures/InspectionMethod.cs (``Human``),
CFX/ResourcePerformance/StationStateChanged.cs, CFX/Structures/ResourceState.cs.
"""

from __future__ import annotations

import time

import pytest
from plant_helpers import AmqpPeer, Parts, station_log, wait_for
from sqlalchemy import select
from test_mqtt import Subscriber

from aoi.app.plant.cfx import CfxSink
from aoi.app.plant.mqtt import MqttSink
from aoi.config import CfxConfig, MqttConfig
from aoi.storage import Storage
from aoi.storage.outbox import Outbox
from aoi.storage.queries import record_review
from aoi.storage.review_feed import ReviewFeed
from aoi.storage.tables import Defect, Inspection

pytestmark = pytest.mark.integration


def _cfx(peer: AmqpPeer) -> CfxSink:
    config = CfxConfig(url=f"amqp://{peer.url}/cfx.aoi", handle="acme.aoi7", connect_timeout_s=1.0)
    return CfxSink(config, "s1")


def _defect_ids(storage: Storage, inspection_id: int) -> list[int]:
    with storage.db.session() as s:
        query = (
            select(Defect.id)
            .join(Inspection, Defect.inspection_uuid == Inspection.uuid)
            .where(Inspection.inspection_id == inspection_id)
            .order_by(Defect.id)
        )
        return list(s.scalars(query))


def _committed(storage: Storage, n: int) -> None:
    wait_for(lambda: storage.health.snapshot().committed >= n, what=f"{n} rows committed")


def test_reviews_go_to_mqtt_once_each_across_a_restart(tmp_path, broker):
    sub = Subscriber(broker.port, "aoi/s1/review")
    sink = MqttSink(MqttConfig(url=broker.url, connect_timeout_s=1.0), "s1")
    box = {"station_id": "s1", "poll_s": 0.01, "review_poll_s": 0.05}
    try:
        with station_log(tmp_path / "st") as storage:
            parts = Parts(storage)
            feed = ReviewFeed(storage.db, "s1")
            first, second = parts.inspect(2)
            _committed(storage, 2)
            # Reviewed before the publisher ever ran: not published (it starts from now on).
            record_review(storage.db, _defect_ids(storage, first)[0], "early", "DefectConfirmed")
            with Outbox(storage.journal, sink, reviews=feed, **box) as outbox:
                wait_for(lambda: outbox.review_sent >= 1, what="the first poll")
                a, b = _defect_ids(storage, second)
                record_review(storage.db, a, "alice", "DefectRejected", "dust")
                record_review(storage.db, b, "alice", "DefectConfirmed")
                wait_for(lambda: len(sub.got) >= 2, what="two reviews")
            time.sleep(0.3)  # a duplicate would come now
            sink = MqttSink(MqttConfig(url=broker.url, connect_timeout_s=1.0), "s1")
            with Outbox(storage.journal, sink, reviews=feed, **box):
                record_review(storage.db, a, "bob", "DefectAccepted", "fixed by rework")
                wait_for(lambda: len(sub.got) >= 3, what="the review after the restart")
                time.sleep(0.3)
    finally:
        sub.close()
    got = sub.got
    assert [(m["reviewer"], m["decision"]) for m in got] == [
        ("alice", "DefectRejected"),
        ("alice", "DefectConfirmed"),
        ("bob", "DefectAccepted"),
    ]
    ids = [m["review_id"] for m in got]
    assert [m["message_id"] for m in got] == [f"s1/review/{i}" for i in ids]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert got[0]["inspection_id"] == second and got[0]["serial"] == f"SN{second:06d}"
    assert got[0]["defect_id"] == a and got[0]["comment"] == "dust"
    assert got[0]["class_name"] == "short" and got[0]["bbox_xyxy_px"] == [0, 5, 6, 11]


def test_a_review_on_cfx_verifies_the_aoi_defect(tmp_path, peer):
    with station_log(tmp_path / "st") as storage:
        parts = Parts(storage)
        feed = ReviewFeed(storage.db, "s1")
        box = {"station_id": "s1", "poll_s": 0.01, "review_poll_s": 0.05, "reviews": feed}
        with Outbox(storage.journal, _cfx(peer), **box):
            (board,) = parts.inspect(1, defects=2)
            wait_for(lambda: peer.named("WorkCompleted"), what="the inspection")
            _committed(storage, 1)
            second = _defect_ids(storage, board)[1]
            record_review(storage.db, second, "alice", "DefectRejected", "dust")
            wait_for(lambda: len(peer.named("UnitsInspected")) == 2, what="the review")
    aoi, review = (m["MessageBody"] for m in peer.named("UnitsInspected"))
    assert aoi["InspectionMethod"] == "AOI" and review["InspectionMethod"] == "Human"
    assert review["TransactionId"] == aoi["TransactionId"]  # the board's transaction
    assert review["Inspector"]["OperatorIdentifier"] == "alice"
    unit = review["InspectedUnits"][0]
    assert unit["UnitIdentifier"] == f"SN{board:06d}" and unit["OverallResult"] == "Passed"
    (verified,) = unit["Inspections"][0]["DefectsFound"]
    found = aoi["InspectedUnits"][0]["Inspections"][0]["DefectsFound"]
    assert verified["UniqueIdentifier"] == found[1]["UniqueIdentifier"]  # the same defect
    assert verified["Verification"] == "DefectRejected"
    assert verified["VerificationDetail"] == "dust"
    assert verified["RegionOfInterest"] == found[1]["RegionOfInterest"]


def test_station_state_changes_are_cfx_messages_with_their_duration(peer):
    sink = _cfx(peer)
    sink.connect()
    try:
        t0 = 1_700_000_000.0
        sink.publish_state({"state": "stopped", "ts": t0})
        sink.publish_state({"state": "stopped", "ts": t0 + 1})  # no change: no message
        sink.publish_state({"state": "running", "ts": t0 + 90.5})
        alarm = {"source": "Recipe", "key": "LOAD", "title": "no recipe", "cause": ""}
        sink.publish_alarm({**alarm, "raised": True, "ts": t0 + 100})
        sink.publish_state({"state": "error", "ts": t0 + 100.25})
        sink.side()
        wait_for(lambda: len(peer.got) == 3, what="two state changes and a fault")
    finally:
        sink.close()
    changes = [m["MessageBody"] for m in peer.named("StationStateChanged")]
    assert [(c["OldState"], c["NewState"]) for c in changes] == [("2000", "1100"), ("1100", "5000")]
    assert (
        changes[0]["OldStateDuration"] == "00:01:30.5000000" and changes[0]["RelatedFault"] is None
    )
    assert changes[1]["OldStateDuration"] == "00:00:09.7500000"
    fault = peer.named("FaultOccurred")[0]["MessageBody"]["Fault"]
    assert changes[1]["RelatedFault"] == fault and fault["FaultCode"] == "Recipe.LOAD"


@pytest.mark.fault
def test_a_refused_message_is_sent_again_without_the_others(tmp_path, peer):
    """The broker accepts a board's WorkStarted and WorkCompleted and rejects its UnitsInspected:
    only UnitsInspected is sent again (after the batch it was in: it then comes after
    WorkCompleted, and after the second board's messages when both went in one batch);
    nothing twice."""
    peer.reject_once.append("UnitsInspected")
    with station_log(tmp_path / "st") as storage:
        parts = Parts(storage)
        with Outbox(storage.journal, _cfx(peer), station_id="s1", poll_s=0.01, backoff_max_s=0.2):
            parts.inspect(2)
            wait_for(lambda: len(peer.named("UnitsInspected")) == 2, what="both boards")
            time.sleep(0.3)  # a late duplicate is counted
    assert len(peer.rejected) == 1
    names = [m["MessageName"].rsplit(".", 1)[1] for m in peer.got]
    board = ["WorkStarted", "UnitsInspected", "WorkCompleted"]
    one_by_one = ["RecipeActivated", "WorkStarted", "WorkCompleted", "UnitsInspected", *board]
    batched = ["RecipeActivated", "WorkStarted", "WorkCompleted", *board, "UnitsInspected"]
    assert names in (one_by_one, batched)
    assert len(set(peer.ids)) == len(peer.ids) == 7
    again = [m for m in peer.got if m["UniqueID"] == peer.rejected[0]["UniqueID"]]
    assert len(again) == 1 and again[0]["MessageName"].endswith("UnitsInspected")
    assert names.index("UnitsInspected") > names.index("WorkCompleted")  # the refused one, later


@pytest.mark.fault
def test_a_cfx_broker_outage_loses_and_repeats_nothing(tmp_path, peer):
    """The AMQP peer stops (its connections dropped) for 3 s while the station inspects on."""
    alarms: list[str | None] = []
    with station_log(tmp_path / "st") as storage:
        parts = Parts(storage)
        box = Outbox(
            storage.journal,
            _cfx(peer),
            station_id="s1",
            poll_s=0.01,
            backoff_max_s=0.5,
            on_alarm=alarms.append,
        )
        with box:
            parts.inspect(10)
            wait_for(lambda: len(peer.named("WorkCompleted")) == 10, what="before the outage")
            peer.stop()
            parts.inspect(10)  # the station goes on: journal and database only
            wait_for(lambda: not box.connected, what="the outage noticed")
            time.sleep(3.0)
            assert len(peer.named("WorkCompleted")) == 10
            peer.start()
            parts.inspect(10)
            wait_for(lambda: len(peer.named("WorkCompleted")) >= 30, what="all after the outage")
            time.sleep(0.5)  # a late duplicate is counted
    bodies = [m["MessageBody"] for m in peer.named("UnitsInspected")]
    serials = [b["InspectedUnits"][0]["UnitIdentifier"] for b in bodies]
    assert serials == [f"SN{i:06d}" for i in parts.ids]  # 30, in order, each once
    assert len(peer.ids) == len(set(peer.ids)) == 1 + 3 * 30  # the recipe, 3 per board
    assert any(a for a in alarms) and alarms[-1] is None  # raised, then cleared
