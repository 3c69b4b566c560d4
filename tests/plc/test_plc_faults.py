"""Issue 12's PLC faults, each driven with the real part: the pure handshake table, pymodbus
peers or raw sockets on 127.0.0.1, and ``aoi bench`` in-process."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from raw_plc_device import RawModbusDevice
from test_plc_link import CLR, EN, FAST, RECIPE, TRIG, HandPlc, inspection

from aoi.cli import main
from aoi.types import Verdict
from plc.client import RegisterClient
from plc.config import register_map
from plc.events import PartResult, ResultDiscarded
from plc.handshake import Handshake, Phase, Timing
from plc.link import StationLink
from plc.peer import LinkState
from plc.registers import ControlBit, ErrorCode, PlcInputs, StatusBit, decode_station
from plc.server import RegisterServer

pytestmark = pytest.mark.fault

ACK = ControlBit.RESULT_ACK
TIMING = Timing(heartbeat_period_s=0.1, require_plc_heartbeat=False, result_ack_timeout_s=1.0)


def _until(what: str, ok: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait for ``ok`` (a hang guard, not a time limit on the behaviour)."""
    deadline = time.monotonic() + timeout_s
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"never saw {what}")
        time.sleep(0.005)


# -- 1. a PLC restarted while a result waits: CLEAR_ERROR discards it -------------------------


def _result_waiting(hs: Handshake) -> None:
    """Part 5 inspected OK, never acknowledged: the ack timeout has latched."""
    hs.set_station_ready(RECIPE)
    hs.step(PlcInputs(control=int(EN)), 0.0)
    hs.step(PlcInputs(control=int(EN | TRIG), part_sequence=5), 0.01)
    hs.step(PlcInputs(control=int(EN)), 0.02)
    assert hs.post_result(PartResult(5, Verdict.OK), 0.03)
    hs.step(PlcInputs(control=int(EN)), 1.2)
    out = hs.outputs
    assert out.has(StatusBit.RESULTS_VALID) and out.error_code == ErrorCode.RESULT_ACK_TIMEOUT


def test_clear_error_discards_a_result_the_restarted_plc_never_acknowledges() -> None:
    hs = Handshake(TIMING)
    _result_waiting(hs)
    # The restarted PLC program knows nothing of part 5: it pulses CLEAR_ERROR, as for any error.
    hs.step(PlcInputs(control=int(EN)), 1.3)
    events = hs.step(PlcInputs(control=int(EN | CLR)), 1.4)
    out = hs.outputs
    assert ResultDiscarded(1, 5) in events
    assert not out.has(StatusBit.RESULTS_VALID) and not out.has(StatusBit.ERROR)
    assert (out.verdict, out.error_code) == (0, 0)
    assert hs.phase is Phase.IDLE and out.has(StatusBit.READY)
    assert (hs.counters.abandoned_results, hs.counters.acked) == (1, 0)
    hs.step(PlcInputs(control=int(EN)), 1.5)
    hs.step(PlcInputs(control=int(EN | TRIG), part_sequence=1), 1.6)
    assert hs.outputs.has(StatusBit.BUSY) and hs.outputs.inspection_id == 2, "the line runs on"


def test_an_ack_rising_with_clear_error_acknowledges_the_result() -> None:
    hs = Handshake(TIMING)
    _result_waiting(hs)
    hs.step(PlcInputs(control=int(EN | ACK | CLR)), 1.3)
    assert (hs.counters.acked, hs.counters.abandoned_results) == (1, 0)
    assert hs.outputs.has(StatusBit.READY)


@pytest.mark.integration
def test_a_plc_killed_while_busy_and_restarted_gets_the_line_going_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Station as server; the PLC dies during a part, a fresh PLC program connects and clears."""
    layout = register_map(FAST)
    with (
        RegisterServer(layout.whole, layout.plc_block, "127.0.0.1", 0) as server,
        StationLink(server, FAST) as link,
    ):
        link.set_station_ready(RECIPE)
        with RegisterClient("127.0.0.1", server.port, timeout_s=1.0) as first:
            first.connect()
            plc = HandPlc(first, layout)
            plc.write(EN)
            plc.wait_bits(StatusBit.READY)
            plc.write(EN, TRIG, part_sequence=41)
            plc.wait_bits(StatusBit.TRIGGER_ACK, StatusBit.BUSY)
            trigger = link.wait_trigger(1.0)
            assert trigger is not None
        # The PLC is killed while the station is BUSY; the result goes out to nobody.
        link.publish(inspection(trigger, Verdict.OK))
        with RegisterClient("127.0.0.1", server.port, timeout_s=1.0) as second:
            second.connect()
            plc = HandPlc(second, layout)
            plc.write(EN)  # the restarted program's first scan
            out = plc.wait_bits(StatusBit.ERROR, StatusBit.RESULTS_VALID)
            assert out.error_code == ErrorCode.RESULT_ACK_TIMEOUT
            with caplog.at_level(logging.WARNING, logger="plc"):
                plc.write(EN, CLR)
                out = plc.wait_bits(StatusBit.READY, off=(StatusBit.RESULTS_VALID, StatusBit.ERROR))
            assert out.verdict == 0
            assert "discarded the unacknowledged result of inspection 1 (part 41)" in caplog.text
            plc.write(EN)
            plc.write(EN, TRIG, part_sequence=1)
            out = plc.wait_bits(StatusBit.TRIGGER_ACK, StatusBit.BUSY)
            assert (out.part_sequence_echo, out.inspection_id) == (1, 2)
            trigger = link.wait_trigger(1.0)
            assert trigger is not None
            plc.write(EN)
            link.publish(inspection(trigger, Verdict.NG))
            out = plc.wait_bits(StatusBit.RESULTS_VALID)
            assert (out.verdict, out.part_sequence_echo) == (2, 1)
            plc.write(EN, ACK)
            plc.wait_bits(StatusBit.READY, off=(StatusBit.RESULTS_VALID,))
        assert link.handshake.counters.abandoned_results == 1
        assert link.handshake.counters.acked == 1


# -- 2. N cycles, N rows ----------------------------------------------------------------------


@pytest.mark.integration
def test_bench_with_the_soft_plc_inspects_exactly_the_cycles_asked_for(
    make_recipe: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    db = tmp_path / "bench.db"
    args = ["bench", "--recipe", str(make_recipe(registration="none")), "--plc", "sim"]
    assert main([*args, "--db", f"sqlite:///{db}", "--cycles", "20", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]
    assert rows == 20
    assert summary["cycles"] == 20
    assert summary["plc"]["parts"] == summary["plc"]["acked"] == 20
    assert "STATION_STOPPING" not in captured.err


# -- 3. a PLC that accepts the connection and drops it ---------------------------------------


@pytest.mark.integration
def test_a_plc_that_accepts_and_drops_is_retried_with_backoff() -> None:
    settings = FAST.model_copy(
        update={
            "role": "client",
            "reconnect_min_ms": 100,
            "reconnect_max_ms": 2000,
            "response_timeout_ms": 200,
        }
    )
    with RawModbusDevice(drop=True) as device:
        client = RegisterClient("127.0.0.1", device.port, timeout_s=0.2)
        with client, StationLink(client, settings) as link:
            _until("the first connection", lambda: device.accepted >= 1)
            time.sleep(3.0)
            attempts = device.accepted
            health = link.health()
    # 0, 0.1, 0.3, 0.7, 1.5 s (+ the failed exchanges): a reset backoff would give ~30.
    assert 2 <= attempts <= 8, attempts
    assert health.state is LinkState.DOWN, "a TCP connect without a reply is no link"
    assert health.error_code == ErrorCode.NONE, "never up: not ready, but no LINK_LOST fault"


# -- 4. the first write after a (re)connect carries the recipe --------------------------------


@pytest.mark.integration
def test_the_first_write_after_connecting_carries_the_active_recipe() -> None:
    settings = FAST.model_copy(update={"role": "client"})
    layout = register_map(settings)
    block = layout.station_block.start

    def first_write(device: RawModbusDevice) -> list[int]:
        _until("a station block write", lambda: any(s == block for s, _ in device.writes))
        return next(words for start, words in device.writes if start == block)

    with RawModbusDevice() as device:
        client = RegisterClient("127.0.0.1", device.port, timeout_s=0.5)
        with client, StationLink(client, settings, recipe=RECIPE) as link:
            out = decode_station(layout, first_write(device))
            assert (out.active_recipe, out.recipe_checksum) == (101, 0x1234ABCD)
            client.disconnect()  # the connection drops: the next first write says it all again
            _until("a reconnect", lambda: device.accepted >= 2)
            count = len(device.writes)
            _until("a write after it", lambda: len(device.writes) > count)
            again = decode_station(layout, device.writes[count][1])
            assert (again.active_recipe, again.recipe_checksum) == (101, 0x1234ABCD)
            assert link.state is LinkState.UP


# -- 5. one line per link state change, no pymodbus noise --------------------------------------


@pytest.mark.integration
def test_link_changes_are_one_warning_each_and_pymodbus_stays_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = FAST.model_copy(update={"role": "client", "reconnect_max_ms": 100})
    caplog.set_level(logging.DEBUG, logger="plc")
    with RawModbusDevice(drop=True) as device:
        client = RegisterClient("127.0.0.1", device.port, timeout_s=0.2)
        with client, StationLink(client, settings) as link:
            _until("a few dropped connections", lambda: device.accepted >= 3)
            _until("the link down", lambda: link.state is LinkState.DOWN)
            device.drop = False
            _until("the link up again", lambda: link.state is LinkState.UP)
    noise = [r for r in caplog.records if r.name.startswith("pymodbus")]
    assert not noise, [r.getMessage() for r in noise]
    changes = [
        r.getMessage()
        for r in caplog.records
        if r.name == "plc.link"
        and r.getMessage().startswith("PLC link ")
        and r.levelno == logging.WARNING
    ]
    assert len(changes) == 2, changes  # connecting -> down (once, not per retry), down -> up
    assert changes[0].startswith("PLC link down (connecting -> down")
    assert "\n" not in changes[0]
    assert changes[1].startswith("PLC link up again (down -> up")
