"""MQTT (aoi/app/plant/mqtt.py) against a real mosquitto the test starts.

The subscriber counts every message it gets, duplicates included: nothing dedupes on the
message id here, so a duplicate fails the test. The issue's 30 s outage is 3 s here (the
figure for 30 s is measured by tools/plant/mqtt_outage.py: docs/benchmarks.md, "Plant
integration (issue 17)").
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from plant_helpers import Mosquitto, Parts, station_log, wait_for

from aoi.app.plant.mqtt import MqttSink
from aoi.config import MqttConfig
from aoi.storage.outbox import Outbox

pytestmark = pytest.mark.integration


class Subscriber:
    """A dashboard: a persistent session (QoS 1), so the broker queues what comes while away."""

    def __init__(self, port: int, topic: str, client_id: str = "dashboard", qos: int = 1) -> None:
        self.got: list[dict[str, Any]] = []
        self.retained: list[dict[str, Any]] = []
        self.redelivered: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.topic = topic
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=qos)
        self.client.on_message = self._message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        payload = json.loads(msg.payload)
        with self._lock:
            if msg.dup and payload in self.got:
                # The broker delivering to *this* subscriber again (its PUBACK was lost when the
                # broker stopped): MQTT marks that DUP. A publisher's repeat is not marked.
                self.redelivered.append(payload)
                return
            (self.retained if msg.retain else self.got).append(payload)

    def ids(self) -> list[int]:
        with self._lock:
            return [m["inspection_id"] for m in self.got]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _sink(broker: Mosquitto, qos: int = 1) -> MqttSink:
    return MqttSink(MqttConfig(url=broker.url, qos=qos, connect_timeout_s=1.0), "s1")


def test_inspections_arrive_once_in_order_with_their_fields(tmp_path, broker):
    sub = Subscriber(broker.port, "aoi/s1/inspection")
    try:
        with station_log(tmp_path / "st") as storage:
            parts = Parts(storage)
            with Outbox(storage.journal, _sink(broker), station_id="s1", poll_s=0.01):
                parts.inspect(25)
                wait_for(lambda: len(sub.ids()) >= 25, what="25 inspections")
                time.sleep(0.3)  # a duplicate would come now: it is counted, not hidden
    finally:
        sub.close()
    assert sub.ids() == parts.ids
    first = sub.got[0]
    assert first["message_id"] == f"s1/inspection/{parts.ids[0]}"
    assert (first["verdict"], first["line_verdict"]) == ("NG", "NG")
    assert first["recipe_hash"] == "a" * 64 and first["model_hash"] == "m" * 64
    assert first["serial"] == f"SN{parts.ids[0]:06d}" and first["part_sequence"] == parts.ids[0]
    assert first["cycle_ms"] == 12.5
    assert [d["class_name"] for d in first["defects"]] == ["short", "short"]


def test_a_broker_outage_loses_and_repeats_nothing(tmp_path, broker):
    sub = Subscriber(broker.port, "aoi/s1/inspection")
    alarms: list[str | None] = []
    try:
        with station_log(tmp_path / "st") as storage:
            parts = Parts(storage)
            box = Outbox(
                storage.journal,
                _sink(broker),
                station_id="s1",
                poll_s=0.01,
                backoff_max_s=0.5,
                on_alarm=alarms.append,
            )
            with box:
                parts.inspect(10)
                wait_for(lambda: len(sub.ids()) >= 10, what="before the outage")
                broker.stop()
                parts.inspect(10)  # the station goes on: journal and database only
                wait_for(lambda: storage.health.snapshot().committed == 20, what="commit")
                wait_for(lambda: not box.connected, what="the outage noticed")
                time.sleep(3.0)  # the outage (30 s in tools/plant/mqtt_outage.py)
                assert len(sub.ids()) == 10
                broker.start()
                parts.inspect(10)
                wait_for(lambda: len(sub.ids()) >= 30, what="all after the outage")
                time.sleep(0.5)  # a late duplicate is counted
    finally:
        sub.close()
    assert sub.ids() == parts.ids  # 30, in order, each once
    assert any(a for a in alarms) and alarms[-1] is None  # raised, then cleared


def test_qos2_a_broker_stopped_mid_stream_delivers_each_exactly_once(tmp_path, broker):
    """Parts keep coming while the broker stops and starts: a message in flight at the stop is
    completed by the resumed session, not published again (QoS 1 may repeat it: docs/plant.md)."""
    sub = Subscriber(broker.port, "aoi/s1/inspection", qos=2)
    stop = threading.Event()
    try:
        with station_log(tmp_path / "st") as storage:
            parts = Parts(storage)

            def produce() -> None:
                while not stop.is_set():
                    parts.inspect(1)
                    time.sleep(0.01)

            sink = _sink(broker, qos=2)
            with Outbox(storage.journal, sink, station_id="s1", poll_s=0.005, backoff_max_s=0.5):
                producer = threading.Thread(target=produce)
                producer.start()
                try:
                    wait_for(lambda: len(sub.ids()) >= 20, what="publishing under way")
                    broker.stop()  # with messages in flight
                    time.sleep(3.0)
                    broker.start()
                    before = len(parts.ids)
                    wait_for(lambda: len(sub.ids()) >= before + 20, what="more after the restart")
                finally:
                    stop.set()
                    producer.join()
                wait_for(lambda: len(sub.ids()) >= len(parts.ids), what="all")
                time.sleep(0.5)  # a late duplicate is counted
    finally:
        sub.close()
    assert len(parts.ids) > 60
    assert sub.ids() == parts.ids  # each once, in order


def test_state_is_retained_and_alarms_are_published(tmp_path, broker):
    sink = _sink(broker)
    alarm_sub = Subscriber(broker.port, "aoi/s1/alarm", client_id="alarms")
    try:
        sink.connect()
        assert alarm_sub.subscribed.wait(10)  # an alarm is not retained: subscribe first
        sink.publish_state({"state": "running", "recipe": "board-a"})
        sink.publish_alarm({"raised": True, "source": "PLC", "title": "PLC not answering"})
        wait_for(lambda: len(alarm_sub.got) == 1, what="the alarm")
        late = Subscriber(broker.port, "aoi/s1/state", client_id="late-dashboard")
        try:
            wait_for(lambda: len(late.retained) == 1, what="the retained state")
        finally:
            late.close()
    finally:
        sink.close()
        alarm_sub.close()
    assert late.retained[0]["state"] == "running"
    assert alarm_sub.got[0]["title"] == "PLC not answering"
