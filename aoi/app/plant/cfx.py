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
event, sent together; those the broker did not accept are sent again, those it did are not (the
sink remembers them), so a refusal repeats none of them (the refused one then comes after the
others). A connection lost with messages in flight may repeat those (same UniqueIDs).
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

from proton import Delivery, Message, ProtonException
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
    # One slash separates the address, which may start with one itself: RabbitMQ's durable
    # queue is amqp://host:5672//queue/<name> (docs/plant.md).
    return host, parts.path[1:] or "cfx"


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
        #: The messages (UniqueIDs) of the event being sent that the broker accepted.
        #: The last batch's messages the broker accepted, by event (message id).
        self._accepted: dict[str, frozenset[str]] = {}
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
        """Send the event's messages that the broker has not accepted yet."""
        self.send_many([event])

    def send_many(self, events: list[OutboxEvent]) -> None:
        """Send the events' messages together, with one wait for the broker's dispositions (a
        batch of boards costs one round trip); raises :class:`PublishError` with ``done``, the
        leading events whose messages were all accepted. What the broker accepted of the
        others is remembered: sent again, they send only the rest (nothing twice)."""
        batch = []
        for event in events:
            done = self._accepted.get(event.message_id, frozenset())
            envs = [
                envelope(
                    name, body, message_id=mid, ts=ts, source=self.source, target=self.config.target
                )
                for name, body, mid, ts in self.messages(event)
            ]
            batch.append((event, done, [e for e in envs if e["UniqueID"] not in done]))
        todo = [env for _event, _done, envs in batch for env in envs]
        accepted = {e["UniqueID"] for e, ok in zip(todo, self._send(todo), strict=True) if ok}
        self._accepted = {
            event.message_id: done | (accepted & {e["UniqueID"] for e in envs})
            for event, done, envs in batch
        }
        for k, (_event, _done, envs) in enumerate(batch):
            refused = [e["MessageName"] for e in envs if e["UniqueID"] not in accepted]
            if refused:
                msg = f"CFX broker {self.host}/{self.address} did not accept {', '.join(refused)}"
                raise PublishError(msg, done=k)

    def _send(self, envs: list[dict[str, Any]]) -> list[bool]:
        """Send ``envs`` together and wait for the broker's dispositions once (a board's three
        messages cost one round trip and one wait, not three: the outbox's thread spends its
        CPU in proton's event loop); returns which ones it accepted."""
        if self._sender is None or self._conn is None:
            msg = f"CFX broker {self.host}: not connected"
            raise PublishError(msg)
        link = self._sender.link
        try:
            deliveries = [
                link.send(
                    Message(
                        body=json.dumps(env),
                        id=env["UniqueID"],
                        durable=True,
                        content_type="application/json",
                        subject=env["MessageName"],
                    )
                )
                for env in envs
            ]
            self._conn.wait(
                lambda: all(d.settled for d in deliveries),
                msg=f"CFX dispositions on {link.name}",
                timeout=self.config.connect_timeout_s,
            )
        except (ProtonException, OSError) as err:
            names = ", ".join(e["MessageName"].rsplit(".", 1)[1] for e in envs)
            msg = f"CFX broker {self.host}/{self.address} did not take {names} ({err})"
            raise PublishError(msg) from err
        for d in deliveries:
            d.settle()
        # Rejected, released or modified: sent again (alone: the accepted ones are not).
        return [d.remote_state == Delivery.ACCEPTED for d in deliveries]

    def side(self) -> None:
        """Send the faults queued since the last call (the outbox's thread, when connected)."""
        while True:
            with self._lock:
                if not self._side:
                    return
                env = self._side[0]
            if not self._send([env])[0]:
                msg = f"CFX broker {self.host}/{self.address} did not accept {env['MessageName']}"
                raise PublishError(msg)
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
