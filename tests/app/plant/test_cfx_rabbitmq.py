"""IPC-CFX (aoi/app/plant/cfx.py) through a real broker: a RabbitMQ node with its AMQP 1.0
plugin, started by the test (tests/app/plant/rabbit_helpers.py), and a proton receiver reading
the queue as an MES would. The other CFX tests use python-qpid-proton's own listener as the
peer (milliseconds to start, and it can refuse a message on cue); this one shows the same
sink against the broker a plant runs, stopped and started again mid-run."""

from __future__ import annotations

import json

import pytest
from plant_helpers import Parts, station_log, wait_for
from rabbit_helpers import RabbitMQ

from aoi.app.plant.cfx import CfxSink
from aoi.config import CfxConfig
from aoi.storage.outbox import Outbox

pytestmark = [pytest.mark.integration, pytest.mark.fault]

QUEUE = "cfx.line1"
#: A durable queue the broker's admin declared, by RabbitMQ's address for an existing queue: the
#: station's ``[cfx] url`` is ``amqp://host:5672//amq/queue/cfx.line1`` (docs/plant.md). A plain
#: address or ``/queue/<name>`` makes RabbitMQ 3 declare a transient queue, emptied by a restart.
ADDRESS = f"/amq/queue/{QUEUE}"


def test_a_rabbitmq_stopped_mid_run_keeps_every_cfx_message_once_and_in_order(tmp_path):
    rabbit = RabbitMQ(tmp_path / "rabbit", durable_queues=(QUEUE,))
    rabbit.start()
    alarms: list[str | None] = []
    try:
        with station_log(tmp_path / "station") as storage:
            parts = Parts(storage)
            url = rabbit.url(ADDRESS)
            config = CfxConfig(url=url, handle="acme.line1.aoi7", connect_timeout_s=2)
            box = Outbox(
                storage.journal,
                CfxSink(config, "s1"),
                station_id="s1",
                poll_s=0.02,
                backoff_max_s=1.0,
                on_alarm=alarms.append,
            )
            with box:
                parts.inspect(5)
                wait_for(lambda: box.caught_up, what="five boards taken by RabbitMQ")
                rabbit.stop()  # nobody has read the queue yet: it is kept on the node's disk
                parts.inspect(5)  # the station goes on: journal and database only
                wait_for(lambda: not box.connected, what="the outage noticed")
                assert alarms and alarms[-1], alarms
                rabbit.start()
                parts.inspect(5)
                wait_for(lambda: box.caught_up and box.connected, 120, what="the catch-up")
        assert rabbit.queued(QUEUE) == 1 + 3 * 15  # the recipe, 3 per board, none twice
        got = rabbit.drain(ADDRESS, 1 + 3 * 15)
    finally:
        rabbit.stop()
    bodies = [json.loads(m.body) for m in got]
    names = [b["MessageName"].rsplit(".", 1)[-1] for b in bodies]
    assert names == ["RecipeActivated"] + ["WorkStarted", "UnitsInspected", "WorkCompleted"] * 15
    serials = [
        b["MessageBody"]["InspectedUnits"][0]["UnitIdentifier"]
        for b in bodies
        if b["MessageName"].endswith("UnitsInspected")
    ]
    assert serials == [f"SN{i:06d}" for i in parts.ids]  # 15, in order, each once
    assert len({b["UniqueID"] for b in bodies}) == len(bodies)
    assert [str(m.id) for m in got] == [b["UniqueID"] for b in bodies]
    assert alarms[-1] is None  # raised, then cleared
