"""IPC-CFX message bodies, shaped as the IPC-CFX SDK's C# classes serialise them.

The reference is github.com/IPCConnectedFactoryExchange/CFX (read with the search tool):

- the envelope: ``CFX/CFXEnvelope.cs``;
- ``CFX/Production/TestAndInspection/UnitsInspected.cs`` (its AOI example) with
  ``CFX/Structures/InspectedUnit.cs``, ``Inspection.cs``, ``Defect.cs`` (``Verification``,
  ``VerificationDetail``), ``Region.cs``, ``Image.cs`` and ``FileTransferMode.cs`` (CFX 1.4: an
  image by URL, ``OutOfBand``), ``InspectionMethod.cs`` (``AOI``; ``Human`` for a review);
- ``CFX/Production/WorkStarted.cs`` (``TransactionID``, ``Lane``, ``Units`` of
  ``CFX/Structures/UnitPosition.cs``) and ``CFX/Production/WorkCompleted.cs`` (``Result``:
  ``CFX/Structures/WorkResult.cs``);
- ``CFX/Production/RecipeActivated.cs``;
- ``CFX/ResourcePerformance/StationStateChanged.cs`` with ``CFX/Structures/ResourceState.cs``
  (SEMI E10 codes, serialised by their ``EnumMember`` values, "1100" ...);
- ``CFX/ResourcePerformance/FaultOccurred.cs`` / ``FaultCleared.cs``, ``CFX/Structures/Fault.cs``.

Coordinates: CFX speaks of millimetres; a recipe with ``[geometry] mm_per_px`` gives them in mm
(template coordinates times the scale, origin at the template's top-left corner); without it
they stay in the template's pixels (``Description`` says which).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: 1.4: ``Image.TransferMode``/``ImageURL`` (the archived frame, by reference).
CFX_VERSION = "1.4"
UNITS_INSPECTED = "CFX.Production.TestAndInspection.UnitsInspected"
RECIPE_ACTIVATED = "CFX.Production.RecipeActivated"
WORK_STARTED = "CFX.Production.WorkStarted"
WORK_COMPLETED = "CFX.Production.WorkCompleted"
STATION_STATE_CHANGED = "CFX.ResourcePerformance.StationStateChanged"
FAULT_OCCURRED = "CFX.ResourcePerformance.FaultOccurred"
FAULT_CLEARED = "CFX.ResourcePerformance.FaultCleared"
_RESULT = {"OK": "Passed", "NG": "Failed", "ERROR": "Error"}
#: The station's states (aoi.app.plant.wiring.station_state) as SEMI E10 states of
#: ResourceState.cs: inspecting is regular work, stopped with a recipe is standby, loading a
#: recipe is set-up, a recipe that does not load is unscheduled downtime.
RESOURCE_STATE = {"running": "1100", "stopped": "2000", "loading": "4500", "error": "5000"}


def timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def timespan(seconds: float) -> str:
    """A .NET ``TimeSpan`` as Newtonsoft writes it (``[d.]hh:mm:ss[.fffffff]``)."""
    ticks = max(0, round(seconds * 10_000_000))
    whole, frac = divmod(ticks, 10_000_000)
    days, rest = divmod(whole, 86_400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    text = f"{days}.{h:02d}:{m:02d}:{s:02d}" if days else f"{h:02d}:{m:02d}:{s:02d}"
    return f"{text}.{frac:07d}" if frac else text


def unique_id(message_id: str) -> str:
    """The envelope's UniqueID: the same for a message sent again (receivers process it once)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"aoi:{message_id}"))


def envelope(
    name: str, body: dict[str, Any], *, message_id: str, ts: float, source: str, target: str
) -> dict[str, Any]:
    """A CFX envelope (CFXEnvelope.cs) around ``body``."""
    return {
        "MessageName": name,
        "Version": CFX_VERSION,
        "TimeStamp": timestamp(ts),
        "UniqueID": unique_id(message_id),
        "Source": source or None,
        "Target": target or None,
        "RequestID": None,
        "MessageBody": body,
    }


def defect_uid(inspection_uuid: str, band: str, index: int) -> str:
    """A defect's UniqueIdentifier: the same in UnitsInspected and in its review."""
    key = f"{inspection_uuid}/{index}" if band == "defect" else f"{inspection_uuid}/{band}/{index}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def _images(image: str | None) -> list[dict[str, Any]]:
    if not image:
        return []
    uri = Path(image).as_uri() if Path(image).is_absolute() else image
    mime = "image/png" if image.endswith(".png") else "application/octet-stream"
    return [{"MimeType": mime, "TransferMode": "OutOfBand", "ImageData": None, "ImageURL": uri}]


def _region(box: list[float], mm_per_px: float | None) -> dict[str, Any]:
    k = mm_per_px or 1.0
    x0, y0, x1, y1 = (round(v * k, 4) if mm_per_px else v for v in box)
    return {
        "StartPointX": x0,
        "StartPointY": y0,
        "RegionSegments": [
            {"X": x1, "Y": y0},
            {"X": x1, "Y": y1},
            {"X": x0, "Y": y1},
            {"X": x0, "Y": y0},
        ],
    }


def defect(
    d: dict[str, Any],
    uid: str,
    image: str | None,
    mm_per_px: float | None,
    verification: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One ``Defect`` (Defect.cs); ``verification``: a review's decision and comment."""
    unit = "mm" if mm_per_px else "px"
    out = {
        "UniqueIdentifier": uid,
        "DefectCode": d["class_name"],
        "DefectCategory": "Bare board",
        "Description": f"{d['class_name']} ({d['area_px']} px², region in {unit})",
        "Comments": None,
        "ComponentOfInterest": None,
        "RegionOfInterest": _region(d["bbox_xyxy_px"], mm_per_px),
        "DefectImages": _images(image),
        "Priority": 1,
        "ConfidenceLevel": round(float(d["score"]) * 100.0, 3),
        "RelatedMeasurements": [],
        "RelatedSymptoms": [],
        "Verification": "NotVerifiedYet",
        "VerificationDetail": None,
    }
    if verification is not None:
        out["Verification"], out["VerificationDetail"] = verification[0], verification[1] or None
    return out


def _unit_id(p: dict[str, Any]) -> str:
    return p["serial"] or str(p["part_sequence"])


def _inspected(
    p: dict[str, Any],
    *,
    method: str,
    inspector: dict[str, Any] | None,
    result: str,
    start: str | None,
    end: str,
    defects: list[dict[str, Any]],
    transaction: str,
    inspection_uid: str,
) -> dict[str, Any]:
    procedure = f"model {p['model_hash'][:12]}" if "model_hash" in p else None
    return {
        "TransactionId": transaction,
        "InspectionMethod": method,
        "SamplingInformation": {
            "SamplingMethod": "NoSampling",
            "LotSize": None,
            "SampleSize": None,
        },
        "Inspector": inspector,
        "RecipeName": p["recipe_name"],
        "RecipeRevision": p["recipe_hash"][:12],
        "InspectedUnits": [
            {
                "UnitIdentifier": _unit_id(p),
                "UnitPositionNumber": 1,
                "OverallResult": result,
                "Inspections": [
                    {
                        "UniqueIdentifier": inspection_uid,
                        "InspectionName": "AOI" if method == "AOI" else "AOI review",
                        "InspectionStartTime": start,
                        "InspectionEndTime": end,
                        "TestProcedure": procedure,
                        "Comments": p.get("verdict_reason") or None,
                        "Result": result,
                        "Error": p.get("error") or p.get("line_error") or None,
                        "DefectsFound": defects,
                        "Symptoms": None,
                        "Measurements": [],
                    }
                ],
            }
        ],
    }


def result_of(p: dict[str, Any]) -> str:
    """The TestResult of an inspection: the verdict the line got, else the station's."""
    return _RESULT.get(p["line_verdict"] or p["verdict"], "Error")


def units_inspected(p: dict[str, Any], mm_per_px: float | None = None) -> dict[str, Any]:
    """The ``UnitsInspected`` body of one inspection event (one unit, one inspection)."""
    image = p.get("image_path")
    found = [
        defect(d, defect_uid(p["uuid"], "defect", n), image, mm_per_px)
        for n, d in enumerate(p["defects"])
    ]
    start = p["ts"] - float(p["cycle_ms"]) / 1000.0
    return _inspected(
        p,
        method="AOI",
        inspector=None,
        result=result_of(p),
        start=timestamp(start),
        end=timestamp(p["ts"]),
        defects=found,
        transaction=p["uuid"],
        inspection_uid=p["uuid"],
    )


def review_inspected(r: dict[str, Any], mm_per_px: float | None = None) -> dict[str, Any]:
    """A review decision as CFX carries one: a ``UnitsInspected`` by a ``Human`` inspector,
    the reviewed defect with its ``Verification`` (the same defect UniqueIdentifier as the AOI's
    message), in the inspection's transaction."""
    d = defect(
        r,
        defect_uid(r["inspection_uuid"], r["band"], r["defect_index"]),
        r.get("image_path"),
        mm_per_px,
        (r["decision"], r["comment"]),
    )
    result = "Failed" if r["decision"] == "DefectConfirmed" else "Passed"
    return _inspected(
        {**r, "verdict_reason": None},
        method="Human",
        inspector={
            "OperatorIdentifier": r["reviewer"],
            "ActorType": "Human",
            "LastName": None,
            "FirstName": None,
            "LoginName": r["reviewer"],
        },
        result=result,
        start=None,
        end=timestamp(r["ts"]),
        defects=[d],
        transaction=r["inspection_uuid"],
        inspection_uid=unique_id(f"review/{r['review_id']}"),
    )


def work_started(p: dict[str, Any]) -> dict[str, Any]:
    """``WorkStarted`` of one inspected board: its transaction is the inspection's."""
    unit = {
        "UnitIdentifier": _unit_id(p),
        "PositionNumber": 1,
        "PositionName": None,
        "X": 0.0,
        "Y": 0.0,
        "Rotation": 0.0,
        "FlipX": False,
        "FlipY": False,
    }
    return {"TransactionID": p["uuid"], "Lane": None, "UnitCount": 1, "Units": [unit]}


def work_completed(p: dict[str, Any]) -> dict[str, Any]:
    """``WorkCompleted``: the inspection was done (``Failed`` when the station could not
    inspect: an ERROR verdict; a board found NG was still inspected, so ``Completed``)."""
    result = "Failed" if (p["line_verdict"] or p["verdict"]) == "ERROR" else "Completed"
    return {"TransactionID": p["uuid"], "Result": result}


def recipe_activated(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "RecipeName": p["name"],
        "Revision": p["hash"][:12],
        "Lane": None,
        "Stage": None,
        "ExpectedCycleTime": 0.0,
        "ExpectedUnitsPerWorkTransaction": 1.0,
        "NumberOfComponentsPerUnit": 0.0,
        "RecipeStagesInformation": [],
    }


def station_state_changed(
    old: str, old_seconds: float, new: str, fault: dict[str, Any] | None
) -> dict[str, Any]:
    """``StationStateChanged`` from the station's state ``old`` (held ``old_seconds``) to
    ``new``; ``fault``: the fault open when it went down, if any."""
    return {
        "OldState": RESOURCE_STATE.get(old, "2000"),
        "OldStateDuration": timespan(old_seconds),
        "NewState": RESOURCE_STATE.get(new, "2000"),
        "RelatedFault": fault,
    }


def fault(source: str, key: str, occurrence: str) -> dict[str, Any]:
    """A ``Fault`` (Fault.cs) for a station alarm."""
    return {
        "Cause": "MechanicalFailure" if source in ("Camera", "PLC") else "SoftwareFailure",
        "Severity": "Error",
        "FaultCode": f"{source}.{key}",
        "FaultOccurrenceId": occurrence,
        "Lane": None,
        "Stage": None,
    }
