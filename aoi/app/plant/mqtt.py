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
        #: The message waiting for its acknowledgement (QoS 2 resumes it after an outage).
        self._inflight: tuple[str, mqtt.MQTTMessageInfo] | None = None

    @property
    def exactly_once(self) -> bool:
        """QoS 2 with a persistent session: a message in flight when the broker went down is
        completed by paho on reconnect, never published a second time."""
        return self.config.qos == 2

    def connect(self) -> None:
        with self._lock:
            resuming = self._client
        if resuming is not None:  # QoS 2: paho reconnects its session itself
            if not self._connected.wait(self.config.connect_timeout_s):
                msg = f"MQTT broker {self.host}:{self.port}: reconnecting"
                raise PublishError(msg)
            return
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=not self.exactly_once,
            # QoS 1: the outbox reconnects and resends what was not acknowledged (at least
            # once); QoS 2: paho resumes the session and completes what was in flight.
            reconnect_on_failure=self.exactly_once,
        )
        client.reconnect_delay_set(0.2, 5)
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

    def reset(self) -> None:
        """After a failed send: QoS 2 keeps the session (paho reconnects), QoS 1 drops it."""
        if not self.exactly_once:
            self.close()

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self._connected.clear()

    def _message(self, event: OutboxEvent) -> tuple[str, dict[str, Any]]:
        """An event's topic and payload (its message id inside)."""
        return f"{self.base}/{event.kind}", {"message_id": event.message_id, **event.payload}

    def _live_client(self) -> mqtt.Client | None:
        """The client while the broker is connected, else None."""
        with self._lock:
            client = self._client
        return client if client is not None and self._connected.is_set() else None

    def send(self, event: OutboxEvent) -> None:
        topic, payload = self._message(event)
        self._publish(topic, payload, retain=False, wait=True, message_id=event.message_id)

    def send_many(self, events: list[OutboxEvent]) -> None:
        """QoS 0/1: publish the events' messages, then wait for their acknowledgements (one
        wait for the batch); QoS 2 sends one at a time (paho completes the one in flight after
        an outage). Raises :class:`PublishError` with ``done``, the leading ones acknowledged."""
        if self.exactly_once:
            for k, event in enumerate(events):
                try:
                    self.send(event)
                except PublishError as err:
                    raise PublishError(str(err), done=k) from err
            return
        client = self._live_client()
        if client is None:
            msg = f"MQTT broker {self.host}:{self.port}: not connected"
            raise PublishError(msg)
        messages = [self._message(e) for e in events]
        infos = [client.publish(t, json.dumps(p), qos=self.config.qos) for t, p in messages]
        deadline = time.monotonic() + ACK_TIMEOUT_S
        for k, info in enumerate(infos):
            while info.rc != mqtt.MQTT_ERR_SUCCESS or not info.is_published():
                if (
                    info.rc != mqtt.MQTT_ERR_SUCCESS
                    or not self._connected.is_set()
                    or time.monotonic() > deadline
                ):
                    msg = (
                        f"MQTT broker {self.host}:{self.port} did not acknowledge {events[k].kind}"
                    )
                    raise PublishError(msg, done=k)
                info.wait_for_publish(0.05)

    def publish_state(self, state: dict[str, Any]) -> None:
        """The station's state, retained (a dashboard that connects later reads it at once)."""
        self._state = state
        self._publish(f"{self.base}/state", state, retain=True, wait=False)

    def publish_alarm(self, alarm: dict[str, Any]) -> None:
        self._publish(f"{self.base}/alarm", alarm, retain=False, wait=False)

    def _publish(
        self,
        topic: str,
        payload: dict[str, Any],
        *,
        retain: bool,
        wait: bool,
        message_id: str = "",
    ) -> None:
        client = self._live_client()
        if client is None:
            if wait:
                msg = f"MQTT broker {self.host}:{self.port}: not connected"
                raise PublishError(msg)
            return  # state and alarms are best effort while the broker is away
        if message_id and self._inflight is not None and self._inflight[0] == message_id:
            info = self._inflight[1]  # sent before the broker went away: paho completes it
        else:
            qos = self.config.qos if wait else 1
            info = client.publish(topic, json.dumps(payload), qos=qos, retain=retain)
        if not wait:
            return
        self._inflight = (message_id, info)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            msg = f"MQTT broker {self.host}:{self.port}: {mqtt.error_string(info.rc)}"
            raise PublishError(msg)
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while not info.is_published():
            if not self._connected.is_set() or time.monotonic() > deadline:
                msg = f"MQTT broker {self.host}:{self.port} did not acknowledge {topic}"
                raise PublishError(msg)
            info.wait_for_publish(0.05)
        self._inflight = None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self._connected.clear()
        self._inflight = None
