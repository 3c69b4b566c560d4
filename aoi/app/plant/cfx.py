"""IPC-CFX (IPC-2591) over AMQP 1.0: ``UnitsInspected``, ``RecipeActivated``, faults.

The JSON follows the IPC-CFX SDK's C# classes (github.com/IPCConnectedFactoryExchange/CFX):
the envelope is ``CFX/CFXEnvelope.cs`` (version 1.3 there), ``UnitsInspected`` is
``CFX/Production/TestAndInspection/UnitsInspected.cs`` with ``InspectedUnit``/``Inspection``/
``Defect`` as in its documented AOI example, ``RecipeActivated`` is
``CFX/Production/RecipeActivated.cs``, ``FaultOccurred``/``FaultCleared`` are
``CFX/ResourcePerformance/FaultOccurred.cs``/``FaultCleared.cs`` with ``CFX/Structures/Fault.cs``
(``FaultCause``, ``FaultSeverity``). Coordinates are the image's pixels (CFX speaks of mm;
the station knows no scale), ``ConfidenceLevel`` is the score in percent.

The envelope's ``UniqueID`` is derived from the message id (so from the inspection id): a
message sent again after a lost acknowledgement carries the same UniqueID, which is what CFX
receivers use to process a message once. Inspections and recipes come through the outbox; faults
are queued by the alarm log's listener and sent by the outbox's thread (proton's blocking
connection is not shared between threads).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from proton import Message, ProtonException
from proton.utils import BlockingConnection, BlockingSender

from aoi.config import CfxConfig
from aoi.storage.outbox import OutboxEvent, PublishError

log = logging.getLogger(__name__)

CFX_VERSION = "1.3"
UNITS_INSPECTED = "CFX.Production.TestAndInspection.UnitsInspected"
RECIPE_ACTIVATED = "CFX.Production.RecipeActivated"
FAULT_OCCURRED = "CFX.ResourcePerformance.FaultOccurred"
FAULT_CLEARED = "CFX.ResourcePerformance.FaultCleared"
#: Faults waiting for the connection at most (older ones are dropped: a fault is also an alarm).
SIDE_KEEP = 200
_RESULT = {"OK": "Passed", "NG": "Failed", "ERROR": "Error"}


def _ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def envelope(
    name: str, body: dict[str, Any], *, message_id: str, ts: float, source: str, target: str
) -> dict[str, Any]:
    """A CFX envelope (CFXEnvelope.cs) around ``body``."""
    return {
        "MessageName": name,
        "Version": CFX_VERSION,
        "TimeStamp": _ts(ts),
        "UniqueID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"aoi:{message_id}")),
        "Source": source or None,
        "Target": target or None,
        "RequestID": None,
        "MessageBody": body,
    }


def _defect(d: dict[str, Any], inspection_uuid: str, n: int, image: str | None) -> dict[str, Any]:
    x0, y0, x1, y1 = d["bbox_xyxy_px"]
    return {
        "UniqueIdentifier": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{inspection_uuid}/{n}")),
        "DefectCode": d["class_name"],
        "DefectCategory": "Bare board",
        "Description": f"{d['class_name']} ({d['area_px']} px)",
        "Comments": f"image: {image}" if image else None,
        "ComponentOfInterest": None,
        "RegionOfInterest": {
            "StartPointX": x0,
            "StartPointY": y0,
            "RegionSegments": [
                {"X": x1, "Y": y0},
                {"X": x1, "Y": y1},
                {"X": x0, "Y": y1},
                {"X": x0, "Y": y0},
            ],
        },
        "DefectImages": [],
        "Priority": 1,
        "ConfidenceLevel": round(float(d["score"]) * 100.0, 3),
        "RelatedMeasurements": [],
        "RelatedSymptoms": [],
    }


def units_inspected(p: dict[str, Any]) -> dict[str, Any]:
    """The ``UnitsInspected`` body of one inspection event (one unit, one inspection)."""
    result = _RESULT.get(p["line_verdict"] or p["verdict"], "Error")
    defects = [_defect(d, p["uuid"], n, p.get("image_path")) for n, d in enumerate(p["defects"])]
    return {
        "TransactionId": p["uuid"],
        "InspectionMethod": "AOI",
        "SamplingInformation": {
            "SamplingMethod": "NoSampling",
            "LotSize": None,
            "SampleSize": None,
        },
        "Inspector": None,
        "RecipeName": p["recipe_name"],
        "RecipeRevision": p["recipe_hash"][:12],
        "InspectedUnits": [
            {
                "UnitIdentifier": p["serial"] or str(p["part_sequence"]),
                "UnitPositionNumber": 1,
                "OverallResult": result,
                "Inspections": [
                    {
                        "UniqueIdentifier": p["uuid"],
                        "InspectionName": "AOI",
                        "InspectionStartTime": None,
                        "InspectionEndTime": _ts(p["ts"]),
                        "TestProcedure": f"model {p['model_hash'][:12]}",
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


def _address(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}"
    return host, parts.path.lstrip("/") or "cfx"


class CfxSink:
    """The outbox's sink for IPC-CFX over AMQP 1.0 (python-qpid-proton, blocking API)."""

    name = "cfx"

    def __init__(self, config: CfxConfig, station_id: str) -> None:
        self.config = config
        self.station_id = station_id
        self.host, self.address = _address(config.url)
        self.source = config.handle or f"aoi.{station_id}"
        self._conn: BlockingConnection | None = None
        self._sender: BlockingSender | None = None
        self._side: deque[dict[str, Any]] = deque(maxlen=SIDE_KEEP)
        self._faults: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def connect(self) -> None:
        try:
            self._conn = BlockingConnection(
                f"amqp://{self.host}",
                timeout=self.config.connect_timeout_s,
                user=self.config.username or None,
                password=self.config.password or None,
            )
            self._sender = self._conn.create_sender(self.address)
        except (ProtonException, OSError) as err:
            self.close()
            msg = f"CFX broker {self.host}/{self.address} cannot be reached ({err})"
            raise PublishError(msg) from err

    def send(self, event: OutboxEvent) -> None:
        if event.kind == "inspection":
            body, name = units_inspected(event.payload), UNITS_INSPECTED
        else:
            body, name = recipe_activated(event.payload), RECIPE_ACTIVATED
        self._send(
            envelope(
                name,
                body,
                message_id=event.message_id,
                ts=event.payload["ts"],
                source=self.source,
                target=self.config.target,
            )
        )

    def _send(self, env: dict[str, Any]) -> None:
        if self._sender is None:
            msg = f"CFX broker {self.host}: not connected"
            raise PublishError(msg)
        message = Message(
            body=json.dumps(env),
            id=env["UniqueID"],
            durable=True,
            content_type="application/json",
            subject=env["MessageName"],
        )
        try:
            self._sender.send(message, timeout=self.config.connect_timeout_s)
        except (ProtonException, OSError) as err:
            msg = f"CFX broker {self.host}/{self.address} did not take {env['MessageName']} ({err})"
            raise PublishError(msg) from err

    def side(self) -> None:
        """Send the faults queued since the last call (the outbox's thread, when connected)."""
        while True:
            with self._lock:
                if not self._side:
                    return
                env = self._side[0]
            self._send(env)
            with self._lock:
                self._side.popleft()

    def publish_state(self, state: dict[str, Any]) -> None:
        """Not mapped to CFX yet (docs/plant.md): the state goes to MQTT and OPC UA."""

    def publish_alarm(self, alarm: dict[str, Any]) -> None:
        """Queue ``FaultOccurred`` / ``FaultCleared`` for an alarm raised or cleared."""
        key = (alarm["source"], alarm["key"])
        with self._lock:
            if alarm["raised"]:
                occurrence = str(uuid.uuid4())
                self._faults[key] = occurrence
                body: dict[str, Any] = {
                    "Fault": {
                        "Cause": "MechanicalFailure"
                        if alarm["source"] in ("Camera", "PLC")
                        else "SoftwareFailure",
                        "Severity": "Error",
                        "FaultCode": f"{alarm['source']}.{alarm['key']}",
                        "FaultOccurrenceId": occurrence,
                        "Lane": None,
                        "Stage": None,
                    }
                }
                name = FAULT_OCCURRED
            else:
                occurrence = self._faults.pop(key, "")
                if not occurrence:
                    return
                body, name = {"FaultOccurrenceId": occurrence}, FAULT_CLEARED
            self._side.append(
                envelope(
                    name,
                    body,
                    message_id=f"{name}/{occurrence}",
                    ts=alarm["ts"],
                    source=self.source,
                    target=self.config.target,
                )
            )

    def close(self) -> None:
        conn, self._conn, self._sender = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except (ProtonException, OSError) as err:
                log.debug("CFX connection closed with %s", err)
