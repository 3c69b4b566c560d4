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

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from plant_helpers import AmqpPeer, Parts, free_port, station_log, wait_for

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
          "ConfidenceLevel", "RelatedMeasurements", "RelatedSymptoms", "Verification",
          "VerificationDetail"}  # fmt: skip
FAULT = {"Cause", "Severity", "FaultCode", "FaultOccurrenceId", "Lane", "Stage"}
SEVERITIES = {"Information", "Warning", "Error", "Alarm"}
CAUSES = {"MechanicalFailure", "SoftwareFailure"}  # the two the station uses, of FaultCause.cs


def _sink(peer: AmqpPeer, scale: float | None = None) -> CfxSink:
    url = f"amqp://{peer.url}/cfx.aoi"
    config = CfxConfig(url=url, handle="acme.line1.aoi7", connect_timeout_s=2.0)
    # The recipe of plant_helpers.Parts has hash "a" * 64; other hashes: no scale known.
    return CfxSink(config, "s1", lambda h: scale if h == "a" * 64 else None)


def test_units_inspected_arrive_once_in_order_in_the_sdks_shape(tmp_path, peer):
    with station_log(tmp_path, archive=True) as storage:
        parts = Parts(storage)
        with Outbox(storage.journal, _sink(peer, scale=0.05), station_id="s1", poll_s=0.01):
            parts.inspect(6, defects=3)
            wait_for(lambda: len(peer.got) >= 19, what="a recipe and six inspections")
            images = [storage.stored(i).image_path for i in parts.ids]
    assert peer.addresses == {"cfx.aoi"}
    names = [m["MessageName"] for m in peer.got]
    work = ["CFX.Production.WorkStarted", "CFX.Production.TestAndInspection.UnitsInspected",
            "CFX.Production.WorkCompleted"]  # fmt: skip
    assert names == ["CFX.Production.RecipeActivated"] + work * 6
    for env in peer.got:
        assert set(env) == ENVELOPE
        assert env["Version"] == "1.4" and env["Source"] == "acme.line1.aoi7"
        assert env["Target"] is None and env["RequestID"] is None
        uuid.UUID(env["UniqueID"])
        datetime.fromisoformat(env["TimeStamp"]).astimezone(UTC)
    assert peer.ids == [m["UniqueID"] for m in peer.got]
    assert set(peer.got[0]["MessageBody"]) >= {"RecipeName", "Revision", "ExpectedCycleTime"}
    assert len(set(peer.ids)) == len(peer.ids)  # no message twice
    bodies = [m["MessageBody"] for m in peer.named("UnitsInspected")]
    serials = [b["InspectedUnits"][0]["UnitIdentifier"] for b in bodies]
    assert serials == [f"SN{i:06d}" for i in parts.ids]  # in order, each once
    # Each board's work transaction: WorkStarted, UnitsInspected, WorkCompleted, one id.
    for k, body in enumerate(bodies):
        started, completed = peer.got[1 + 3 * k]["MessageBody"], peer.got[3 + 3 * k]["MessageBody"]
        assert started["TransactionID"] == body["TransactionId"] == completed["TransactionID"]
        assert started["UnitCount"] == 1 and started["Units"][0]["UnitIdentifier"] == serials[k]
        assert set(started["Units"][0]) >= {"PositionNumber", "X", "Y", "Rotation", "FlipX"}
        assert completed["Result"] == "Completed"  # NG boards were inspected all the same
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
    assert defects[1]["Verification"] == "NotVerifiedYet"
    # The recipe's scale is 0.05 mm/px: the box (10, 5, 16, 11) px is (0.5, 0.25, 0.8, 0.55) mm.
    region = defects[1]["RegionOfInterest"]
    assert (region["StartPointX"], region["StartPointY"]) == (0.5, 0.25)
    assert region["RegionSegments"][1] == {"X": 0.8, "Y": 0.55}
    assert "in mm" in defects[1]["Description"]
    assert len({d["UniqueIdentifier"] for d in defects}) == 3
    # The archived frame by reference (CFX 1.4 Image, out of band).
    (image,) = defects[1]["DefectImages"]
    assert images[0] and image["ImageURL"] == Path(images[0]).as_uri()
    assert image["TransferMode"] == "OutOfBand" and image["MimeType"] == "image/png"


def test_without_a_scale_regions_stay_in_pixels(tmp_path, peer):
    with station_log(tmp_path) as storage:
        parts = Parts(storage)
        with Outbox(storage.journal, _sink(peer), station_id="s1", poll_s=0.01):
            parts.inspect(1, defects=2)
            wait_for(lambda: peer.named("UnitsInspected"), what="one inspection")
    (body,) = [m["MessageBody"] for m in peer.named("UnitsInspected")]
    defect = body["InspectedUnits"][0]["Inspections"][0]["DefectsFound"][1]
    region = defect["RegionOfInterest"]
    assert (region["StartPointX"], region["StartPointY"]) == (10, 5)
    assert "in px" in defect["Description"] and defect["DefectImages"] == []


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
