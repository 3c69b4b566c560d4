"""IPC-CFX (IPC-2591) over AMQP 1.0: the station's sink for its outbox.

Per inspected board ``WorkStarted``, ``UnitsInspected`` (``InspectionMethod`` AOI) and
``WorkCompleted`` in one transaction (the inspection's uuid); ``RecipeActivated``; a review
decision as a ``UnitsInspected`` by a ``Human`` inspector carrying the defect's
``Verification``; ``StationStateChanged`` and ``FaultOccurred``/``FaultCleared`` from the
station's state and alarms. The bodies are built in :mod:`aoi.app.plant.cfx_messages` (which
names the SDK's C# files they follow).

The envelope's ``UniqueID`` is derived from the message id (so from the inspection or review
id): a message sent again after a lost acknowledgement carries the same UniqueID, which is what
CFX receivers use to process a message once. The three messages of an inspection are one outbox
event; when the broker fails between them, the event is sent again from the first message the
broker did not accept (the sink remembers which it did), so an outage repeats none of them.
State changes and faults are queued by the listeners and sent by the outbox's thread (proton's
blocking connection is not shared between threads).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from proton import Message, ProtonException
from proton.utils import BlockingConnection, BlockingSender

from aoi.app.plant.cfx_messages import (
    FAULT_CLEARED,
    FAULT_OCCURRED,
    RECIPE_ACTIVATED,
    STATION_STATE_CHANGED,
    UNITS_INSPECTED,
    WORK_COMPLETED,
    WORK_STARTED,
    envelope,
    fault,
    recipe_activated,
    review_inspected,
    station_state_changed,
    units_inspected,
    work_completed,
    work_started,
)
from aoi.config import CfxConfig
from aoi.storage.outbox import OutboxEvent, PublishError

log = logging.getLogger(__name__)

#: Faults and state changes waiting for the connection at most (older ones are dropped: a
#: fault is also an alarm, and the state is also on MQTT/OPC UA).
SIDE_KEEP = 200
#: Looks up a recipe's scale (``[geometry] mm_per_px``) by its content hash; None: unknown.
Scale = Callable[[str], "float | None"]


def _address(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}"
    return host, parts.path.lstrip("/") or "cfx"


class CfxSink:
    """The outbox's sink for IPC-CFX over AMQP 1.0 (python-qpid-proton, blocking API)."""

    name = "cfx"

    def __init__(self, config: CfxConfig, station_id: str, scale: Scale | None = None) -> None:
        self.config = config
        #: A recipe's mm per pixel by its hash (defect regions in mm where it is known).
        self.scale = scale or (lambda _hash: None)
        self.station_id = station_id
        self.host, self.address = _address(config.url)
        self.source = config.handle or f"aoi.{station_id}"
        self._conn: BlockingConnection | None = None
        self._sender: BlockingSender | None = None
        self._side: deque[dict[str, Any]] = deque(maxlen=SIDE_KEEP)
        self._faults: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        #: The messages of the event being sent that the broker accepted (see the docstring).
        self._accepted: tuple[str, int] = ("", 0)
        self._state: tuple[str, float] | None = None  # the last state and since when

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

    def messages(self, event: OutboxEvent) -> list[tuple[str, dict[str, Any], str, float]]:
        """The CFX messages of one outbox event: (name, body, message id, time stamp)."""
        p, mid = event.payload, event.message_id
        if event.kind == "inspection":
            scale = self.scale(p["recipe_hash"])
            start = p["ts"] - float(p["cycle_ms"]) / 1000.0
            return [
                (WORK_STARTED, work_started(p), f"{mid}/started", start),
                (UNITS_INSPECTED, units_inspected(p, scale), mid, p["ts"]),
                (WORK_COMPLETED, work_completed(p), f"{mid}/completed", p["ts"]),
            ]
        if event.kind == "review":
            body = review_inspected(p, self.scale(p["recipe_hash"]))
            return [(UNITS_INSPECTED, body, mid, p["ts"])]
        return [(RECIPE_ACTIVATED, recipe_activated(p), mid, p["ts"])]

    def send(self, event: OutboxEvent) -> None:
        """Send the event's messages, from the first one the broker has not accepted yet."""
        messages = self.messages(event)
        done = self._accepted[1] if self._accepted[0] == event.message_id else 0
        for n, (name, body, mid, ts) in enumerate(messages[done:], start=done):
            env = envelope(
                name, body, message_id=mid, ts=ts, source=self.source, target=self.config.target
            )
            self._send(env)
            self._accepted = (event.message_id, n + 1)

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
        """Queue ``StationStateChanged`` when the station's state changed (not its recipe)."""
        now = state.get("ts", time.time())
        with self._lock:
            last, self._state = self._state, (state["state"], now)
            if last is None or last[0] == state["state"]:
                if last is not None:
                    self._state = last  # same state: it lasts since it began
                return
            # A station that went down with a fault open: the (newest) fault it went down with.
            related = None
            if state["state"] == "error" and self._faults:
                key, occurrence = next(reversed(self._faults.items()))
                related = fault(*key, occurrence)
            body = station_state_changed(last[0], now - last[1], state["state"], related)
            self._queue(STATION_STATE_CHANGED, body, f"state/{now:.6f}", now)

    def publish_alarm(self, alarm: dict[str, Any]) -> None:
        """Queue ``FaultOccurred`` / ``FaultCleared`` for an alarm raised or cleared."""
        key = (alarm["source"], alarm["key"])
        with self._lock:
            if alarm["raised"]:
                occurrence = str(uuid.uuid4())
                self._faults[key] = occurrence
                body: dict[str, Any] = {"Fault": fault(*key, occurrence)}
                name = FAULT_OCCURRED
            else:
                occurrence = self._faults.pop(key, "")
                if not occurrence:
                    return
                body, name = {"FaultOccurrenceId": occurrence}, FAULT_CLEARED
            self._queue(name, body, f"{name}/{occurrence}", alarm["ts"])

    def _queue(self, name: str, body: dict[str, Any], message_id: str, ts: float) -> None:
        """Queue a message for :meth:`side` (call holding ``_lock``)."""
        message_id = f"{self.station_id}/{message_id}"
        self._side.append(
            envelope(
                name,
                body,
                message_id=message_id,
                ts=ts,
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
