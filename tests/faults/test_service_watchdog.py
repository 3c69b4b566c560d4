"""`aoi run` as a systemd Type=notify service: READY, watchdog pings, and pings that stop.

The test owns the notify socket (an AF_UNIX datagram socket, as systemd's) and hands it to a real
`aoi run` in NOTIFY_SOCKET with a 2 s WATCHDOG_USEC (a ping every second). A station idle waiting
for PLC triggers must keep pinging; a station whose grab blocks (a replay image that is a FIFO
no one writes: a real blocking read) must stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.app.service import ServiceNotifier

pytestmark = [pytest.mark.fault, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
WATCHDOG_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(0.2)
        yield sock, path


def _station(args: list[str], tmp_path: Path, notify: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "AOI_DATA_DIR": str(tmp_path / "data"),
        "NOTIFY_SOCKET": notify,
        "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6)),
    }
    cmd = [sys.executable, "-m", "aoi.cli", "run", "--threads", "1", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _collect(
    sock: socket.socket, proc: subprocess.Popen[bytes], until: Callable[[list], bool]
) -> list[tuple[float, list[str]]]:
    """Datagrams (arrival time, lines) until ``until(messages)`` holds (a 120 s hang guard)."""
    got: list[tuple[float, list[str]]] = []
    deadline = time.monotonic() + 120
    while not until(got):
        assert time.monotonic() < deadline, got
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            data = sock.recv(4096)
        except TimeoutError:
            continue
        got.append((time.monotonic(), data.decode().splitlines()))
    return got


def _pings(got: list[tuple[float, list[str]]]) -> list[float]:
    return [t for t, lines in got if "WATCHDOG=1" in lines]


def test_an_idle_station_waiting_for_the_plc_is_ready_then_pings_then_says_stopping(
    make_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    port = _free_port()  # the station serves here; no PLC ever connects: it only waits
    args = ["--recipe", str(make_recipe()), "--plc", f"tcp://127.0.0.1:{port}"]
    with _notify_socket(tmp_path) as (sock, path):
        proc = _station(args, tmp_path, path)
        try:
            got = _collect(sock, proc, lambda g: len(_pings(g)) >= 4)
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            _out, err = proc.communicate(timeout=120)
            stopped_s = time.monotonic() - sent
            tail = []
            while True:
                try:
                    tail.append(sock.recv(4096).decode().splitlines())
                except TimeoutError:
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err.decode()
    first = got[0][1]
    # READY is the first word, with the recipe it runs: the station was loaded before it.
    assert "READY=1" in first, got
    assert any(line.startswith("STATUS=test-board: 0 inspected") for line in first), first
    assert not any("READY=1" in lines for _, lines in got[1:]), "READY=1 sent twice"
    pings = _pings(got)
    assert pings[0] > got[0][0]
    gaps = np.diff(pings)
    # Never faster than the rate asked for (WATCHDOG_USEC / 2), with scheduling slack.
    assert gaps.min() > WATCHDOG_S / 2 * 0.8, gaps
    assert any("STOPPING=1" in lines for lines in tail), tail
    print(f"ping gaps {np.round(gaps, 3).tolist()} s; SIGTERM to exit {stopped_s:.2f} s")


def test_a_grab_that_blocks_stops_the_watchdog_pings(
    make_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    folder = tmp_path / "replay"
    folder.mkdir()
    # A DeepPCB pair whose test image is a FIFO: reading it blocks until someone writes.
    cv2.imwrite(str(folder / "00000001_temp.jpg"), np.zeros((64, 64), np.uint8))
    fifo = folder / "00000001_test.jpg"
    os.mkfifo(fifo)
    args = ["--recipe", str(make_recipe()), "--plc", "none", "--source", f"replay:{folder}"]
    with _notify_socket(tmp_path) as (sock, path):
        proc = _station(args, tmp_path, path)
        try:
            got = _collect(sock, proc, lambda g: any("READY=1" in lines for _, lines in g))
            ready_at = got[0][0]
            # Much longer than the stall allowance (max(1 s, grab timeout + 1 s) = 3 s) plus
            # a period: no ping may come in its last stretch.
            listen_until = ready_at + 4 * WATCHDOG_S + 4.0
            while time.monotonic() < listen_until:
                assert proc.poll() is None
                try:
                    got.append((time.monotonic(), sock.recv(4096).decode().splitlines()))
                except TimeoutError:
                    continue
            with fifo.open("wb"):  # let the read end (empty: an ERROR verdict), then exhausted
                pass
            _out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    pings = _pings(got)
    assert all(t - ready_at < 3.0 + WATCHDOG_S + 1.0 for t in pings), (pings, ready_at)
    assert not [t for t in pings if t > listen_until - 3.0], pings
    text = err.decode()
    assert "watchdog pings withheld" in text and "no cycle progress" in text, text
    assert text.count("watchdog pings withheld") == 1, text
    assert proc.returncode == 0, text


def test_the_notifier_reaches_an_abstract_socket_and_is_silent_without_one() -> None:
    name = f"@aoi-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        sock.settimeout(5)
        env = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}
        notifier = ServiceNotifier.from_environment(env)
        assert notifier.watchdog_s is None  # the watchdog is some other process's
        assert notifier.send("STATUS=hello")
        assert sock.recv(100) == b"STATUS=hello"
        notifier.close()
    quiet = ServiceNotifier.from_environment({"WATCHDOG_USEC": "4000000"})
    assert not quiet.enabled
    assert not quiet.send("READY=1")
    own = ServiceNotifier.from_environment(
        {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert own.watchdog_s == 4.0


def test_a_wedged_plc_server_is_trouble_for_the_watchdog(
    make_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    """The station's own Modbus server loop, really blocked, fails the liveness probe."""
    from aoi.app.service import station_trouble
    from aoi.app.station import Station, StationOptions
    from plc.server import RegisterServer

    port = _free_port()
    options = StationOptions(
        recipe=str(make_recipe()), plc=f"tcp://127.0.0.1:{port}", keep_log=False, threads=1
    )
    with Station(options) as station:
        assert station.start("test")
        assert station_trouble(station, stall_s=3.0) is None  # idle, waiting for triggers
        assert station.plc is not None
        server = station.plc.link.peer
        assert isinstance(server, RegisterServer)
        release = threading.Event()
        assert server._loop is not None
        server._loop.call_soon_threadsafe(release.wait, 30)  # the loop runs nothing else now
        try:
            trouble = station_trouble(station, stall_s=3.0)
        finally:
            release.set()
        assert trouble == "the PLC server's event loop does not answer"
        assert server.responsive(5.0)
        assert station_trouble(station, stall_s=3.0) is None
        station.stop("test")


def test_a_recipe_change_the_plc_asked_for_is_no_hung_cycle(
    make_recipe: Callable[..., Path], tmp_path: Path
) -> None:
    """A rig build (a big model, a first engine build) can outlast the stall allowance; the
    watchdog waits for it, up to its limit, and calls a cycle that shows no life hung."""
    from aoi.app.service import RECIPE_LOAD_LIMIT_S, station_trouble
    from aoi.app.station import Station, StationOptions

    options = StationOptions(recipe=str(make_recipe()), plc=None, keep_log=False, threads=1)
    options = StationOptions(**{**options.__dict__, "default_plc": "none"})
    with Station(options) as station:
        assert station.start("test")
        # stall_s below zero: any cycle counts as late, as a real hang would after seconds.
        assert "no cycle progress" in (station_trouble(station, stall_s=-1.0) or "")
        station.loading_since = time.monotonic()
        assert station_trouble(station, stall_s=-1.0) is None
        station.loading_since = time.monotonic() - RECIPE_LOAD_LIMIT_S - 1
        assert "no cycle progress" in (station_trouble(station, stall_s=-1.0) or "")
        station.loading_since = None
        station.stop("test")
        assert station.wait(60)
