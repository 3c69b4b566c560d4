"""The issue's 30 s broker outage, measured: every inspection arrives exactly once, in order?

``PYTHONPATH=. python tools/plant/mqtt_outage.py [--outage-s 30] [--rate-hz 20]`` starts a
private, persistent mosquitto, a station defect log (SQLite, small journal segments so several
are written during the outage), the MQTT outbox and a dashboard subscriber (persistent session,
QoS 1) that counts every message it gets, duplicates included. Parts are inspected at
``--rate-hz`` throughout; the broker is stopped (SIGTERM) after 5 s, for ``--outage-s``, and
started again. Prints one JSON object. tests/app/plant/test_mqtt.py does the same with 3 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from aoi.app.plant.mqtt import MqttSink
from aoi.config import MqttConfig, StorageConfig
from aoi.storage import Storage
from aoi.storage.outbox import Outbox
from aoi.types import Defects, ErrorKind, InspectionResult, LineAnswer, Registration, Verdict


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _result(i: int) -> InspectionResult:
    return InspectionResult(
        inspection_id=i, frame_id=i, frame_name=f"b{i}", recipe_name="r", recipe_hash="a" * 64,
        model_hash="m" * 64, backend="cpu", verdict=Verdict.OK, defects=Defects.from_items([]),
        review_defects=Defects.from_items([]), stages_ms={}, cycle_ms=10.0, over_budget=False,
        registration=Registration.identity(1.0, 0.0), error="", error_kind=ErrorKind.NONE,
        verdict_reason="", timestamp_utc=time.time(), part_sequence=i, serial=f"SN{i:06d}",
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outage-s", type=float, default=30.0)
    parser.add_argument("--rate-hz", type=float, default=20.0)
    parser.add_argument("--qos", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    port = _port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {tmp}/\nuser root\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)  # noqa: S603
        time.sleep(0.5)
        return proc

    broker = start()
    got: list[int] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dash", clean_session=False)
    sub.reconnect_delay_set(0.1, 1.0)
    sub.on_connect = lambda c, *_: c.subscribe("aoi/s1/inspection", qos=args.qos)
    sub.on_message = lambda _c, _u, m: got.append(json.loads(m.payload)["inspection_id"])
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    config = StorageConfig(journal_dir=tmp / "journal", archive_images=False, min_free_gb=0)
    storage = Storage(config, station_id="s1", database_url=f"sqlite:///{tmp}/aoi.db",
                      data_dir=tmp, segment_bytes=16_384)  # fmt: skip
    sent: list[int] = []
    stop = threading.Event()
    with storage:
        sink = MqttSink(
            MqttConfig(url=f"mqtt://127.0.0.1:{port}", qos=args.qos, connect_timeout_s=1), "s1"
        )
        with Outbox(storage.journal, sink, station_id="s1", backoff_max_s=2.0) as box:

            def produce() -> None:
                i = 0
                while not stop.is_set():
                    i += 1
                    r = _result(i)
                    storage.publish(r)
                    storage.finish(r)
                    storage.record_line(LineAnswer(i, Verdict.OK))
                    sent.append(i)
                    time.sleep(1 / args.rate_hz)

            producer = threading.Thread(target=produce)
            producer.start()
            time.sleep(5)
            broker.terminate()
            broker.wait()
            down_at = time.monotonic()
            segments_at_stop = len(storage.journal.segments())
            time.sleep(args.outage_s)
            during = len(sent)
            segments_at_restart = len(storage.journal.segments())
            outage = time.monotonic() - down_at
            broker = start()
            time.sleep(5)
            stop.set()
            producer.join()
            deadline = time.monotonic() + 60
            while len(got) < len(sent) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.0)  # a late duplicate would come now
            out = {
                "outage_s": round(outage, 1),
                "qos": args.qos,
                "sent": len(sent),
                "inspected_before_restart": during,
                "received": len(got),
                "duplicates": len(got) - len(set(got)),
                "missing": len(set(sent) - set(got)),
                "in_order": got == sorted(got),
                "exactly_once_in_order": got == sent,
                "journal_segments_at_stop": segments_at_stop,
                "journal_segments_at_restart": segments_at_restart,
                "published": box.published,
            }
    sub.loop_stop()
    broker.terminate()
    broker.wait()
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(out, sort_keys=True))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if out["exactly_once_in_order"] else 1


if __name__ == "__main__":
    sys.exit(main())
