"""The cycle with the plant publishers on against off, in one run: what publishing costs.

``python -m aoi.app.plant.bench --recipe R --cycles 2000 [--mqtt URL] [--cfx URL]
[--opcua ENDPOINT] [--local]`` runs the real cycle on synthetic boards with the defect log on
(SQLite in a temporary folder) and the publishers' process running (aoi/app/plant/host.py, as
the station runs it), in alternating blocks with its outboxes paused ("off") and publishing
("on"); what an "off" block journals is skipped, so each "on" block carries the steady
publishing load of its own parts. ``--local`` starts a private mosquitto (Debian
``mosquitto``), a python-qpid-proton AMQP 1.0 receiver and the OPC UA server on 127.0.0.1.
Prints one JSON object (both p99s and their ratio).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from aoi.app.plant.host import HostSettings
from aoi.app.plant.process import PlantProcess
from aoi.app.rig import Rig
from aoi.app.station import critical_sinks
from aoi.config import (
    CfxConfig,
    MqttConfig,
    OpcuaConfig,
    PlantConfig,
    StationConfig,
    StorageConfig,
)
from aoi.events import EventBus
from aoi.pipeline import run_cycles
from aoi.recipe import find_recipe, load_recipe
from aoi.stats import percentiles
from aoi.storage.storage import Storage


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_mosquitto(folder: Path) -> Iterator[str]:
    """A private mosquitto on a free port (the plant tests start theirs the same way)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        time.sleep(0.5)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


_PEER = """
import sys, threading
from proton.handlers import MessagingHandler
from proton.reactor import Container
class Peer(MessagingHandler):
    def on_start(self, event):
        event.container.listen(sys.argv[1])
    def on_link_opening(self, event):
        event.link.target.address = event.link.remote_target.address
Container(Peer()).run()
"""


@contextmanager
def local_amqp_peer() -> Iterator[str]:
    """A python-qpid-proton AMQP 1.0 listener accepting every message, in its own process (in
    this one it would compete with the cycle for the GIL, as no real broker does)."""
    port = _port()
    proc = subprocess.Popen([sys.executable, "-c", _PEER, f"127.0.0.1:{port}"])  # noqa: S603
    try:
        time.sleep(1.0)
        yield f"amqp://127.0.0.1:{port}/cfx"
    finally:
        proc.terminate()
        proc.wait(10)


def compare(
    recipe: str | Path,
    station: StationConfig,
    *,
    cycles: int,
    block: int,
    folder: Path,
    aa: bool = False,
) -> dict[str, Any]:
    """The cycle with the outboxes paused and publishing, ``cycles`` each, alternating blocks
    (``aa``: paused in both arms, the same layout: the machine's own spread between arms)."""
    loaded = load_recipe(find_recipe(str(recipe)))
    times: dict[str, list[float]] = {"off": [], "on": []}
    rig = Rig(loaded, station, source_spec="synthetic", backend="auto", threads=0, seed=1)
    url = f"sqlite:///{folder / 'aoi.db'}"
    with (
        Storage(station.storage, station_id=station.station_id, database_url=url) as storage,
        ExitStack() as stack,
    ):
        settings = HostSettings(
            config=station,
            journal_dir=storage.journal.folder,
            database_url=url,
            data_dir=folder,
            wait_for_line=False,
        )
        host = stack.enter_context(PlantProcess(settings))
        events = EventBus()
        events.subscribe("storage", storage.finish)
        with rig, events:
            pipe = rig.pipeline_for(loaded, critical_sinks(storage, None), events)
            run_cycles(pipe, rig.source, cycles=20)
            cpu0 = host.call("stats")["cpu_s"]
            for k in range(-(-cycles // block)):
                n = min(block, cycles - k * block)
                for name in ("off", "on") if k % 2 == 0 else ("on", "off"):
                    host.call("pause" if name == "off" or aa else "resume")
                    times[name] += run_cycles(pipe, rig.source, cycles=n).cycle_ms
            host.call("release")
            deadline = time.monotonic() + 60
            while not (stats := host.call("stats"))["caught_up"] and time.monotonic() < deadline:
                time.sleep(0.1)
    p_off, p_on = percentiles(times["off"]), percentiles(times["on"])
    return {
        "recipe": loaded.name,
        "backend": rig.backend.name,
        "cycles_each": cycles,
        "control_aa": aa,
        "block": block,
        "cycle_ms_off": p_off,
        "cycle_ms_on": p_on,
        "p99_ratio_on_off": round(p_on["p99"] / p_off["p99"], 4) if p_off["p99"] else None,
        "published": stats["published"],
        # The publishers' process's CPU over the blocks (every thread: paho, proton, asyncua).
        "publisher_cpu_s": round(stats["cpu_s"] - cpu0, 3),
        "publisher_pid": host.pid,
        "plant_cpus": list(station.plant.cpus),
        "niceness": station.plant.niceness,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aoi.app.plant.bench", description=__doc__)
    parser.add_argument("--recipe", default="board-a-640")
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--mqtt", default="")
    parser.add_argument("--cfx", default="")
    parser.add_argument("--opcua", default="")
    parser.add_argument("--local", action="store_true", help="start all three on 127.0.0.1")
    parser.add_argument("--aa", action="store_true", help="control: publishers paused in both")
    parser.add_argument("--plant-cpus", default="", help="[plant] cpus, e.g. 2 or 2,3")
    parser.add_argument("--niceness", type=int, default=PlantConfig().niceness)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        mqtt, cfx, opcua = args.mqtt, args.cfx, args.opcua
        if args.local:
            mqtt = mqtt or stack.enter_context(local_mosquitto(folder))
            cfx = cfx or stack.enter_context(local_amqp_peer())
            opcua = opcua or f"opc.tcp://127.0.0.1:{_port()}"
        station = StationConfig(
            storage=StorageConfig(journal_dir=folder / "journal", archive_images=False),
            mqtt=MqttConfig(url=mqtt),
            cfx=CfxConfig(url=cfx),
            opcua=OpcuaConfig(endpoint=opcua),
            plant=PlantConfig(
                cpus=tuple(int(c) for c in args.plant_cpus.split(",") if c.strip()),
                niceness=args.niceness,
            ),
        )
        out = compare(
            args.recipe, station, cycles=args.cycles, block=args.block, folder=folder, aa=args.aa
        )
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
