"""The publishers' own process (aoi/app/plant/host.py, process.py): a real child process, a real
mosquitto, a real defect log; the host is killed with SIGKILL as a crash would."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from pathlib import Path

import pytest
from plant_helpers import Mosquitto, Parts, station_log, wait_for
from test_mqtt import Subscriber

from aoi.app.plant.host import HostSettings, Scales
from aoi.app.plant.placement import thread_placement
from aoi.app.plant.process import PlantError, PlantProcess
from aoi.config import MqttConfig, OpcuaConfig, PlantConfig, StationConfig
from aoi.storage.records import recipe_record

pytestmark = pytest.mark.integration


def _settings(tmp_path: Path, config: StationConfig) -> HostSettings:
    return HostSettings(
        config=config,
        journal_dir=tmp_path / "journal",
        database_url=f"sqlite:///{tmp_path / 'aoi.db'}",
        data_dir=tmp_path,
        wait_for_line=True,
    )


class Alarms:
    def __init__(self) -> None:
        self.got: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, text: str | None) -> None:
        with self._lock:
            self.got.append((name, text))


def test_a_killed_host_is_an_alarm_and_a_new_host_goes_on_where_the_broker_acknowledged(
    tmp_path: Path, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    config = StationConfig(station_id="s1", mqtt=MqttConfig(url=broker.url))
    dashboard = Subscriber(broker.port, "aoi/s1/inspection")
    alarms = Alarms()
    try:
        with station_log(tmp_path) as storage:
            parts = Parts(storage)
            with PlantProcess(_settings(tmp_path, config), on_alarm=alarms) as host:
                first = host.pid
                assert first is not None
                assert first != os.getpid()  # the publishers are not on the station's GIL
                parts.inspect(10)
                wait_for(lambda: len(dashboard.got) >= 10, what="ten inspections")
                wait_for(lambda: host.call("stats")["caught_up"], what="positions saved")
                os.kill(first, signal.SIGKILL)
                parts.inspect(10)  # journaled while no publisher runs
                wait_for(lambda: host.restarts == 1, what="a new host")
                wait_for(lambda: len(dashboard.got) >= 20, what="twenty inspections")
                assert host.pid != first
    finally:
        dashboard.close()
    assert dashboard.ids() == list(range(1, 21))  # each once, in order, none lost
    raised = [text for name, text in alarms.got if name == "publishers" and text]
    assert raised, alarms.got
    assert "stopped (exit code -9)" in raised[0]
    assert alarms.got[-1] == ("publishers", None)  # cleared once the new host runs
    # The host's own log lines reach the station's log.
    assert any(r.name == "aoi.storage.outbox" and "connected" in r.message for r in caplog.records)


LINUX = Path("/proc/self/task").is_dir()


@pytest.mark.skipif(not LINUX, reason="per-thread niceness and CPUs are read from /proc (Linux)")
def test_every_thread_of_the_host_runs_on_the_configured_cpu_and_niceness(
    tmp_path: Path, broker: Mosquitto
) -> None:
    # Linux keeps niceness and CPUs per thread: the publishers' threads (paho's loop, the
    # outbox) already run when the host lowers itself, and must not stay at the station's.
    core = max(os.sched_getaffinity(0))
    config = StationConfig(
        mqtt=MqttConfig(url=broker.url), plant=PlantConfig(cpus=(core,), niceness=7)
    )
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    with station_log(tmp_path), PlantProcess(_settings(tmp_path, config)) as host:
        assert host.pid is not None
        threads = thread_placement(host.pid)
        assert set(host.call("stats")["published"]) == {"mqtt"}  # placed, and still answering
    assert len(threads) >= 3  # main, the pipe reader, paho's loop, the outbox
    for tid, nice, cpus in threads:
        assert nice == min(mine + 7, 19), (tid, nice)
        assert cpus == {core}, (tid, cpus)


def test_a_plant_cpu_the_machine_lacks_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    absent = (os.cpu_count() or 1) + 3
    config = StationConfig(
        opcua=OpcuaConfig(endpoint="opc.tcp://127.0.0.1:1"), plant=PlantConfig(cpus=(absent,))
    )
    with (
        station_log(tmp_path),
        pytest.raises(PlantError, match=r"\[plant\] cpus: CPU \d+ does not exist") as err,
        PlantProcess(_settings(tmp_path, config)),
    ):
        pass
    assert "\n" not in str(err.value)
    assert f"found [{absent}]" in str(err.value)


def test_a_host_that_cannot_open_a_publisher_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = StationConfig(opcua=OpcuaConfig(endpoint=f"opc.tcp://127.0.0.1:{port}"))
        with (
            station_log(tmp_path),
            pytest.raises(PlantError, match="could not start") as err,
            PlantProcess(_settings(tmp_path, config)),
        ):
            pass
    assert "\n" not in str(err.value)
    assert str(port) in str(err.value)


def test_each_recipe_record_teaches_the_host_its_scale() -> None:
    content = '[product]\nname = "b"\n[geometry]\nmm_per_px = 0.025\n'
    scales = Scales((("old", None),))
    scales.learn(recipe_record("b", "h" * 64, content, 1.0))
    scales.learn(recipe_record("c", "c" * 64, "not toml [", 2.0))
    assert scales("h" * 64) == 0.025
    assert scales("c" * 64) is None
    assert scales("old") is None
