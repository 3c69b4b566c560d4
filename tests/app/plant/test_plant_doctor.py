"""``aoi doctor``'s plant checks (aoi/app/plant/doctor.py) against real sockets."""

from __future__ import annotations

import socket

from plant_helpers import free_port

from aoi.app.plant.doctor import plant_checks
from aoi.config import CfxConfig, MqttConfig, OpcuaConfig, StationConfig


def test_each_configured_endpoint_is_checked_and_a_dead_broker_is_a_warning():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up = listening.getsockname()[1]
        station = StationConfig(
            mqtt=MqttConfig(url=f"mqtt://127.0.0.1:{up}"),
            cfx=CfxConfig(url=f"amqp://127.0.0.1:{free_port()}/q"),
            opcua=OpcuaConfig(endpoint=f"opc.tcp://127.0.0.1:{up}"),  # taken: by the "broker"
        )
        mqtt, cfx, opcua = plant_checks(station)
    assert (mqtt.name, mqtt.ok) == ("mqtt", True)
    assert (cfx.name, cfx.ok, cfx.fatal) == ("cfx", False, False)
    assert "does not answer" in cfx.detail
    assert (opcua.name, opcua.ok, opcua.fatal) == ("opcua", False, False)
    assert plant_checks(StationConfig()) == []  # all off by default
