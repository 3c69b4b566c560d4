"""IPC-CFX (aoi/app/plant/cfx.py) against a real AMQP 1.0 peer.

The peer is python-qpid-proton's own Container listening on a free port and accepting every
message (a receiver, as a CFX broker's queue would be). Not RabbitMQ: a throwaway RabbitMQ node
(Erlang VM, the AMQP 1.0 plugin enabled) takes 10-20 s to start on the CI's two shared cores and
its start-up is the fragile part of such a test; the proton peer speaks the same AMQP 1.0
transfers and dispositions the sink depends on, and starts in milliseconds.

The JSON shape is checked against the SDK's C# classes (IPCConnectedFactoryExchange/CFX):
CFX/CFXEnvelope.cs, CFX/Production/TestAndInspection/UnitsInspected.cs (its AOI example),
CFX/Production/RecipeActivated.cs, CFX/ResourcePerformance/FaultOccurred.cs,
CFX/ResourcePerformance/FaultCleared.cs, CFX/Structures/Fault.cs, FaultSeverity.cs,
FaultCause.cs, TestResult.cs.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from plant_helpers import Parts, free_port, station_log, wait_for
from proton.handlers import MessagingHandler
from proton.reactor import Container

from aoi.app.plant.cfx import CfxSink
from aoi.config import CfxConfig
from aoi.storage.outbox import Outbox, PublishError

pytestmark = pytest.mark.integration

ENVELOPE = {"MessageName", "Version", "TimeStamp", "UniqueID", "Source", "Target", "RequestID",
            "MessageBody"}  # fmt: skip
UNITS_INSPECTED = {"TransactionId", "InspectionMethod", "SamplingInformation", "Inspector",
                   "RecipeName", "RecipeRevision", "InspectedUnits"}  # fmt: skip
INSPECTED_UNIT = {"UnitIdentifier", "UnitPositionNumber", "OverallResult", "Inspections"}
INSPECTION = {"UniqueIdentifier", "InspectionName", "InspectionStartTime", "InspectionEndTime",
              "TestProcedure", "Comments", "Result", "Error", "DefectsFound", "Symptoms",
              "Measurements"}  # fmt: skip
DEFECT = {"UniqueIdentifier", "DefectCode", "DefectCategory", "Description", "Comments",
          "ComponentOfInterest", "RegionOfInterest", "DefectImages", "Priority",
          "ConfidenceLevel", "RelatedMeasurements", "RelatedSymptoms"}  # fmt: skip
FAULT = {"Cause", "Severity", "FaultCode", "FaultOccurrenceId", "Lane", "Stage"}
SEVERITIES = {"Information", "Warning", "Error", "Alarm"}
CAUSES = {"MechanicalFailure", "SoftwareFailure"}  # the two the station uses, of FaultCause.cs


class AmqpPeer(MessagingHandler):
    """An AMQP 1.0 listener that accepts and keeps every message (duplicates included)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.url = f"127.0.0.1:{port}"
        self.got: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.addresses: set[str] = set()
        self.stopping = threading.Event()
        self.listening = threading.Event()

    def on_start(self, event: Any) -> None:
        self.acceptor = event.container.listen(self.url)
        self.listening.set()
        event.container.schedule(0.05, self)

    def on_timer_task(self, event: Any) -> None:
        if self.stopping.is_set():
            self.acceptor.close()
            event.container.stop()
        else:
            event.container.schedule(0.05, self)

    def on_link_opening(self, event: Any) -> None:
        address = event.link.remote_target.address
        if address:  # a queue of that name, as a broker's node would be
            self.addresses.add(address)
            event.link.target.address = address

    def on_message(self, event: Any) -> None:
        self.ids.append(str(event.message.id))
        self.got.append(json.loads(event.message.body))


@pytest.fixture
def peer() -> Iterator[AmqpPeer]:
    handler = AmqpPeer(free_port())
    container = Container(handler)
    thread = threading.Thread(target=container.run, daemon=True)
    thread.start()
    assert handler.listening.wait(10)
    yield handler
    handler.stopping.set()
    thread.join(10)


def _sink(peer: AmqpPeer) -> CfxSink:
    url = f"amqp://{peer.url}/cfx.aoi"
    return CfxSink(CfxConfig(url=url, handle="acme.line1.aoi7", connect_timeout_s=2.0), "s1")


def test_units_inspected_arrive_once_in_order_in_the_sdks_shape(tmp_path, peer):
    with station_log(tmp_path) as storage:
        parts = Parts(storage)
        with Outbox(storage.journal, _sink(peer), station_id="s1", poll_s=0.01):
            parts.inspect(6, defects=3)
            wait_for(lambda: len(peer.got) >= 7, what="a recipe and six inspections")
    assert peer.addresses == {"cfx.aoi"}
    names = [m["MessageName"] for m in peer.got]
    assert (
        names
        == ["CFX.Production.RecipeActivated"]
        + ["CFX.Production.TestAndInspection.UnitsInspected"] * 6
    )
    for env in peer.got:
        assert set(env) == ENVELOPE
        assert env["Version"] == "1.3" and env["Source"] == "acme.line1.aoi7"
        assert env["Target"] is None and env["RequestID"] is None
        uuid.UUID(env["UniqueID"])
        datetime.fromisoformat(env["TimeStamp"]).astimezone(UTC)
    assert peer.ids == [m["UniqueID"] for m in peer.got]
    assert set(peer.got[0]["MessageBody"]) >= {"RecipeName", "Revision", "ExpectedCycleTime"}
    bodies = [m["MessageBody"] for m in peer.got[1:]]
    serials = [b["InspectedUnits"][0]["UnitIdentifier"] for b in bodies]
    assert serials == [f"SN{i:06d}" for i in parts.ids]  # in order, each once
    body = bodies[0]
    assert set(body) == UNITS_INSPECTED and body["InspectionMethod"] == "AOI"
    unit = body["InspectedUnits"][0]
    assert set(unit) == INSPECTED_UNIT and unit["OverallResult"] == "Failed"
    inspection = unit["Inspections"][0]
    assert set(inspection) == INSPECTION and inspection["Result"] == "Failed"
    defects = inspection["DefectsFound"]
    assert len(defects) == 3  # one per finding
    assert all(set(d) == DEFECT for d in defects)
    assert defects[1]["DefectCode"] == "short" and defects[1]["ConfidenceLevel"] == 90.0
    region = defects[1]["RegionOfInterest"]
    assert (region["StartPointX"], region["StartPointY"]) == (10, 5)
    assert region["RegionSegments"][1] == {"X": 16, "Y": 11}
    assert len({d["UniqueIdentifier"] for d in defects}) == 3


def test_faults_occur_and_clear_with_one_occurrence_id(peer):
    sink = _sink(peer)
    sink.connect()
    try:
        at = datetime.now(UTC).timestamp()
        alarm = {"source": "PLC", "key": "PLC_HEARTBEAT_LOST", "title": "PLC not answering"}
        sink.publish_alarm({**alarm, "raised": True, "cause": "", "ts": at})
        sink.publish_alarm({**alarm, "raised": False, "cause": "", "ts": at + 1})
        sink.side()
        wait_for(lambda: len(peer.got) == 2, what="fault occurred and cleared")
    finally:
        sink.close()
    occurred, cleared = peer.got
    assert occurred["MessageName"] == "CFX.ResourcePerformance.FaultOccurred"
    fault = occurred["MessageBody"]["Fault"]
    assert set(fault) == FAULT
    assert fault["Severity"] in SEVERITIES and fault["Cause"] in CAUSES
    assert fault["FaultCode"] == "PLC.PLC_HEARTBEAT_LOST"
    assert cleared["MessageName"] == "CFX.ResourcePerformance.FaultCleared"
    assert cleared["MessageBody"] == {"FaultOccurrenceId": fault["FaultOccurrenceId"]}


def test_no_peer_fails_fast_with_a_publish_error():
    sink = CfxSink(CfxConfig(url=f"amqp://127.0.0.1:{free_port()}/q", connect_timeout_s=1), "s")
    with pytest.raises(PublishError, match="cannot be reached"):
        sink.connect()
