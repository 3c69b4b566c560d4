"""``aoi doctor``'s plant checks (aoi/app/plant/doctor.py) against real sockets."""

from __future__ import annotations

import os
import socket

from plant_helpers import free_port

from aoi.app.plant.doctor import plant_checks
from aoi.config import CfxConfig, MqttConfig, OpcuaConfig, PlantConfig, StationConfig


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
        cpus, mqtt, cfx, opcua, security = plant_checks(station)
    assert (cpus.name, cpus.ok) == ("plant cpus", True)
    assert "the station's CPUs, niceness 19" in cpus.detail
    assert (mqtt.name, mqtt.ok) == ("mqtt", True)
    assert (cfx.name, cfx.ok, cfx.fatal) == ("cfx", False, False)
    assert "does not answer" in cfx.detail
    assert (opcua.name, opcua.ok, opcua.fatal) == ("opcua", False, False)
    assert (security.ok, security.detail) == (
        True,
        "encrypted, self-signed certificate (data folder)",
    )
    assert plant_checks(StationConfig()) == []  # all off by default


def test_the_opcua_channel_is_checked(tmp_path):
    def check(**opcua: object):
        station = StationConfig(opcua=OpcuaConfig(endpoint="opc.tcp://127.0.0.1:4840", **opcua))
        return plant_checks(station)[-1]

    plain = check(security="none")
    assert (plain.ok, plain.fatal) == (False, False) and "in clear" in plain.detail
    cert, key = tmp_path / "c.der", tmp_path / "k.pem"
    cert.write_bytes(b"x")
    missing = check(certificate=str(cert), private_key=str(key))
    assert (missing.ok, missing.fatal) == (False, True) and "private_key" in missing.detail
    key.write_bytes(b"x")
    assert check(certificate=str(cert), private_key=str(key)).ok


def test_a_plant_cpu_the_machine_lacks_fails_the_check():
    absent = (os.cpu_count() or 1) + 1
    station = StationConfig(
        mqtt=MqttConfig(url=f"mqtt://127.0.0.1:{free_port()}"), plant=PlantConfig(cpus=(absent,))
    )
    cpus = plant_checks(station)[0]
    assert (cpus.name, cpus.ok, cpus.fatal) == ("plant cpus", False, True)
    assert f"CPU {absent} does not exist" in cpus.detail
