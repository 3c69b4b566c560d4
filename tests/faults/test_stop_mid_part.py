"""SIGTERM (systemd's stop) and SIGINT while the PLC runs parts: every part gets its real verdict.

The station is a real `aoi run` (or offscreen `aoi gui`) process; the PLC is the soft PLC on a
Modbus socket in this one. The time from the signal to the exit is printed (run with -s), not
asserted: it is a measurement, not a threshold.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aoi.config import PlcConfig
from plc.session import open_soft_plc
from plc.softplc import SimTiming, SoftPlcLogic

pytestmark = [pytest.mark.fault, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



def _signal_after_five_parts(
    cmd: list[str],
    env: dict[str, str],
    port: int,
    logic: SoftPlcLogic,
    signum: signal.Signals,
    what: str,
) -> tuple[int, bytes, str]:
    """Start ``cmd`` against the soft PLC as client, send ``signum`` once five parts are
    answered, and wait for the exit (a 120 s hang guard); returns code, stdout, stderr."""
    config = PlcConfig(heartbeat_period_ms=100)
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            with open_soft_plc("client", "127.0.0.1", port, config, logic, scan_s=0.002):
                deadline = time.monotonic() + 120
                while logic.report.acked < 5:
                    assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                    assert time.monotonic() < deadline, "the station never answered five parts"
                    time.sleep(0.01)
                proc.send_signal(signum)
                sent = time.monotonic()
                out, err = proc.communicate(timeout=120)
                print(f"{what}: {signum.name} to exit {time.monotonic() - sent:.2f} s")
        finally:
            if proc.poll() is None:
                proc.kill()
    return proc.returncode, out, err.decode()

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_mid_run_answers_the_part_in_flight_with_its_verdict(
    make_recipe: Callable[..., Path], tmp_path: Path, signum: signal.Signals
) -> None:
    port = _free_port()
    logic = SoftPlcLogic(None, SimTiming(heartbeat_period_s=0.1))  # parts until the station stops
    env = {**os.environ, "PYTHONPATH": str(REPO), "AOI_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "aoi.cli", "run", "--recipe", str(make_recipe()), "--json"]
    cmd += ["--plc", f"tcp://127.0.0.1:{port}", "--threads", "1"]
    returncode, out, text = _signal_after_five_parts(cmd, env, port, logic, signum, "aoi run")
    assert returncode == 0, text
    assert "Traceback" not in text
    assert f"{signum.name}: finishing the current board" in text
    summary = json.loads(out.decode().strip().splitlines()[-1])
    r = logic.report
    # Every part the PLC started was answered: with an inspection's verdict, collected, or
    # (a trigger sent on a READY the PLC read just before it dropped) as a missed trigger.
    assert r.parts == r.acked + r.missed and r.missed <= 1, r.summary()
    assert r.acked == summary["plc"]["acked"] == summary["cycles"], (r.summary(), text)
    assert (r.mismatched, r.timeouts) == (0, 0), r.problems
    assert "ERROR" not in r.verdicts and not r.station_errors, (r.verdicts, r.station_errors)
    assert summary["storage"]["committed"] == summary["cycles"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_to_the_gui_stops_the_station_cleanly_with_an_audit_entry(
    make_recipe: Callable[..., Path], tmp_path: Path, signum: signal.Signals
) -> None:
    port = _free_port()
    data = tmp_path / "data"
    logic = SoftPlcLogic(None, SimTiming(heartbeat_period_s=0.1))
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"}
    cmd = [sys.executable, "-m", "aoi.cli", "gui", "--start", "--recipe", str(make_recipe())]
    cmd += ["--plc", f"tcp://127.0.0.1:{port}", "--threads", "1", "--data-dir", str(data)]
    returncode, _out, text = _signal_after_five_parts(cmd, env, port, logic, signum, "aoi gui")
    assert returncode == 0, text
    assert "Traceback" not in text
    assert f"aoi gui: station stopped on {signum.name}" in text, text
    r = logic.report
    # Every part answered (a trigger racing the stop is answered as missed, see above).
    assert r.parts == r.acked + r.missed and r.missed <= 1, r.summary()
    assert (r.mismatched, r.timeouts) == (0, 0), r.problems
    assert "ERROR" not in r.verdicts and not r.station_errors, (r.verdicts, r.station_errors)
    with sqlite3.connect(data / "aoi.db") as db:
        stored = db.execute("SELECT count(*) FROM inspections").fetchone()[0]
        audit = db.execute("SELECT who, what, new_value FROM audit_events").fetchall()
    # Every part the PLC saw answered is in the defect log.
    assert stored == r.acked, (stored, r.summary())
    assert ("system", "station.state", f"stopped: {signum.name}") in audit, audit
