"""What one plant sink costs per board: its thread's CPU and wall time for N sends in a row.

``PYTHONPATH=. python tools/plant/sink_cost.py [--boards 300]`` starts a private mosquitto, a
python-qpid-proton AMQP 1.0 peer (own process) and the OPC UA server on 127.0.0.1 (as
``python -m aoi.app.plant.bench --local`` does), sends N inspection events of three defects
through each sink, and prints one JSON object: CPU (``time.thread_time``) and wall milliseconds
per board. docs/benchmarks.md ("Plant integration (issue 17), second round") has the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from aoi.app.plant.bench import _port, local_amqp_peer, local_mosquitto
from aoi.app.plant.cfx import CfxSink
from aoi.app.plant.mqtt import MqttSink
from aoi.app.plant.opcua import OpcuaServer
from aoi.config import CfxConfig, MqttConfig, OpcuaConfig
from aoi.storage.outbox import OutboxEvent


def _event(i: int) -> OutboxEvent:
    defect = {"class_id": 1, "class_name": "short", "bbox_xyxy_px": [1, 2, 3, 4], "area_px": 4}
    payload = {
        "inspection_id": i,
        "uuid": f"0191-{i}",
        "station_id": "s1",
        "ts": time.time(),
        "verdict": "NG",
        "verdict_reason": "3 defect(s)",
        "line_verdict": "NG",
        "line_error": "",
        "recipe_name": "board-a",
        "recipe_hash": "a" * 64,
        "model_hash": "m" * 64,
        "part_sequence": i,
        "serial": f"SN{i:06d}",
        "cycle_ms": 40.0,
        "over_budget": False,
        "image_path": None,
        "error": "",
        "defects": [{**defect, "score": 0.9}] * 3,
        "review_defects": [],
    }
    return OutboxEvent("inspection", f"s1/inspection/{i}", payload)


def _cost(sink: Any, boards: int) -> dict[str, float]:
    cpu, wall = time.thread_time(), time.perf_counter()
    for i in range(boards):
        sink.send(_event(i))
    return {
        "cpu_ms_per_board": round((time.thread_time() - cpu) / boards * 1000, 3),
        "wall_ms_per_board": round((time.perf_counter() - wall) / boards * 1000, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--boards", type=int, default=300)
    args = parser.parse_args()
    out: dict[str, Any] = {"boards": args.boards}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        mqtt = MqttSink(MqttConfig(url=stack.enter_context(local_mosquitto(folder))), "s1")
        cfx = CfxSink(CfxConfig(url=stack.enter_context(local_amqp_peer())), "s1")
        for sink in (mqtt, cfx):
            sink.connect()
            stack.callback(sink.close)
            out[sink.name] = _cost(sink, args.boards)
        endpoint = OpcuaConfig(endpoint=f"opc.tcp://127.0.0.1:{_port()}")
        with OpcuaServer(endpoint, "s1", lambda *_: "", folder) as opcua:
            out["opcua"] = _cost(opcua, args.boards)
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
