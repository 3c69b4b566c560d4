"""What each plant publisher's threads cost per board: CPU of every thread (``/proc/self/task``,
Linux) while N boards of three defects are journaled at 25 boards/s and published to a private
mosquitto, a python-qpid-proton AMQP 1.0 peer (own process) and the OPC UA server, all on
127.0.0.1. The publishers are opened in this process (as the host process opens them) so that
their threads can be told apart; the boards are written as the plant tests write them
(tests/app/plant/plant_helpers.py).

    PYTHONPATH=. python tools/plant/publisher_threads.py [--boards 300]

docs/benchmarks.md ("Plant integration (issue 17), third round") has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "app" / "plant"))


def _cpu_by_thread() -> dict[str, float]:
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for tid in os.listdir("/proc/self/task"):
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        out[names.get(int(tid), tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main() -> None:
    from plant_helpers import Parts, station_log

    from aoi.app.plant.bench import _port, local_amqp_peer, local_mosquitto
    from aoi.app.plant.host import POLL_S, HostSettings, Scales, _open, _Pipe
    from aoi.config import CfxConfig, MqttConfig, OpcuaConfig, StationConfig

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boards", type=int, default=300)
    args = parser.parse_args()

    class Nowhere:  # the station's end of the pipe: nobody listens here
        def send(self, _message: object) -> None:
            pass

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        config = StationConfig(
            station_id="s1",
            mqtt=MqttConfig(url=stack.enter_context(local_mosquitto(folder))),
            cfx=CfxConfig(url=stack.enter_context(local_amqp_peer())),
            opcua=OpcuaConfig(endpoint=f"opc.tcp://127.0.0.1:{_port()}"),
        )
        storage = stack.enter_context(station_log(folder))
        parts = Parts(storage)
        settings = HostSettings(
            config=config,
            journal_dir=folder / "journal",
            database_url=f"sqlite:///{folder / 'aoi.db'}",
            data_dir=folder,
            wait_for_line=True,
        )
        publishers = ExitStack()
        _listeners, boxes = _open(publishers, settings, _Pipe(Nowhere()), Scales(()))  # type: ignore[arg-type]
        time.sleep(3.0)  # connected, the OPC UA address space built
        before = _cpu_by_thread()
        for _ in range(args.boards):
            parts.inspect(1, defects=3)
            time.sleep(0.04)
        while not all(b.caught_up for b in boxes):
            time.sleep(0.1)
        after = _cpu_by_thread()
        publishers.close()
    per_board = {
        name: round((after[name] - before.get(name, 0.0)) / args.boards * 1e3, 2)
        for name in after
        if after[name] - before.get(name, 0.0) > 0.005
    }
    print(json.dumps({"boards": args.boards, "poll_s": POLL_S, "cpu_ms_per_board": per_board}))


if __name__ == "__main__":
    main()
