"""The MQTT publisher: ``<prefix>/<station>/inspection``, ``/state`` (retained) and ``/alarm``.

Inspections come through the outbox (QoS 1, sent one at a time and acknowledged by the broker
before the next: order is kept and nothing is lost); state and alarms are published as they
happen (QoS 1, best effort: the state is retained, so the latest one is what counts).
A lost connection drops the client; the outbox reconnects with a fresh one after its back-off,
so paho never retransmits on its own behind the outbox's back.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from aoi.config import MqttConfig
from aoi.storage.outbox import OutboxEvent, PublishError

log = logging.getLogger(__name__)

#: How long one message may wait for the broker's PUBACK before the connection is given up.
ACK_TIMEOUT_S = 5.0


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


class MqttSink:
    """The outbox's sink for MQTT (paho-mqtt), also the station's state and alarm topics."""

    name = "mqtt"

    def __init__(self, config: MqttConfig, station_id: str) -> None:
        self.config = config
        self.host, self.port = _address(config.url)
        self.base = f"{config.topic_prefix}/{station_id}"
        self.client_id = f"aoi-{station_id}"
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None

    def connect(self) -> None:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            reconnect_on_failure=False,  # the outbox reconnects, and resends what was not acked
        )
        if self.config.username:
            client.username_pw_set(self.config.username, self.config.password)
        client.connect_timeout = self.config.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._connected.clear()
        try:
            client.connect(self.host, self.port, keepalive=10)
        except OSError as err:
            msg = f"MQTT broker {self.host}:{self.port} cannot be reached ({err})"
            raise PublishError(msg) from err
        client.loop_start()
        if not self._connected.wait(self.config.connect_timeout_s):
            client.loop_stop()
            msg = f"MQTT broker {self.host}:{self.port} did not accept the connection"
            raise PublishError(msg)
        with self._lock:
            self._client = client
        if self._state is not None:
            self.publish_state(self._state)  # a broker that lost it gets it again

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self._connected.clear()

    def send(self, event: OutboxEvent) -> None:
        topic = f"{self.base}/{event.kind}"
        payload = {"message_id": event.message_id, **event.payload}
        self._publish(topic, payload, retain=False, wait=True)

    def publish_state(self, state: dict[str, Any]) -> None:
        """The station's state, retained (a dashboard that connects later reads it at once)."""
        self._state = state
        self._publish(f"{self.base}/state", state, retain=True, wait=False)

    def publish_alarm(self, alarm: dict[str, Any]) -> None:
        self._publish(f"{self.base}/alarm", alarm, retain=False, wait=False)

    def _publish(self, topic: str, payload: dict[str, Any], *, retain: bool, wait: bool) -> None:
        with self._lock:
            client = self._client
        if client is None or not self._connected.is_set():
            if wait:
                msg = f"MQTT broker {self.host}:{self.port}: not connected"
                raise PublishError(msg)
            return  # state and alarms are best effort while the broker is away
        info = client.publish(topic, json.dumps(payload), qos=1, retain=retain)
        if not wait:
            return
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            msg = f"MQTT broker {self.host}:{self.port}: {mqtt.error_string(info.rc)}"
            raise PublishError(msg)
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while not info.is_published():
            if not self._connected.is_set() or time.monotonic() > deadline:
                msg = f"MQTT broker {self.host}:{self.port} did not acknowledge {topic}"
                raise PublishError(msg)
            info.wait_for_publish(0.05)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._connected.clear()
