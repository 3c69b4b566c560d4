"""The soft PLC's program, scan by scan against a scripted station block (no sockets)."""

from __future__ import annotations

from dataclasses import replace

from plc.registers import ControlBit, ErrorCode, StationOutputs, StatusBit
from plc.softplc import SimTiming, SoftPlcLogic, Step

READY, TACK, BUSY, VALID, TOGGLE, MISSED, DONE, FAILED, ERROR, ONLINE = StatusBit
TIMING = SimTiming(heartbeat_period_s=0.1, result_timeout_s=1.0)


def station(*bits: StatusBit, hb: int = 0, **fields: int) -> StationOutputs:
    return StationOutputs(status=sum(int(b) for b in bits), station_heartbeat=hb, **fields)


def start(logic: SoftPlcLogic) -> float:
    """Scans until the soft PLC has seen the station's heartbeat change; returns the time."""
    logic.scan(station(READY, ONLINE, hb=1), 0.0)
    logic.scan(station(READY, ONLINE, hb=2), 0.01)
    return 0.01


def test_one_part_with_echo_and_id_checks() -> None:
    logic = SoftPlcLogic(1, TIMING, first_sequence=41)
    t = start(logic)
    assert logic.inputs.has(ControlBit.TRIGGER) and logic.inputs.part_sequence == 41
    assert logic.inputs.serial == "SIM-00000041"
    logic.scan(station(TACK, BUSY, ONLINE, hb=2, inspection_id=9, part_sequence_echo=41), t + 0.01)
    assert not logic.inputs.has(ControlBit.TRIGGER)
    ok = station(VALID, ONLINE, hb=2, inspection_id=9, part_sequence_echo=41, verdict=1)
    logic.scan(ok, t + 0.02)
    assert logic.inputs.has(ControlBit.RESULT_ACK)
    logic.scan(station(READY, ONLINE, hb=2, inspection_id=9, part_sequence_echo=41), t + 0.03)
    assert not logic.inputs.has(ControlBit.RESULT_ACK)
    logic.scan(station(READY, ONLINE, hb=2), t + 0.04)
    assert logic.done
    assert logic.report.summary() == {
        "parts": 1,
        "acked": 1,
        "missed": 0,
        "mismatched": 0,
        "timeouts": 0,
    }
    assert dict(logic.report.verdicts) == {"OK": 1}


def test_a_wrong_echo_is_a_mismatch() -> None:
    logic = SoftPlcLogic(1, TIMING, first_sequence=5)
    t = start(logic)
    logic.scan(station(TACK, BUSY, ONLINE, hb=2, inspection_id=3, part_sequence_echo=5), t + 0.01)
    wrong = station(VALID, ONLINE, hb=2, inspection_id=3, part_sequence_echo=4, verdict=1)
    logic.scan(wrong, t + 0.02)
    assert logic.report.mismatched == 1
    assert "part_sequence_echo 4, expected 5" in logic.report.problems[0]


def test_a_missed_trigger_is_counted_and_not_waited_for() -> None:
    logic = SoftPlcLogic(2, TIMING)
    t = start(logic)
    logic.scan(station(TACK, MISSED, ONLINE, hb=2), t + 0.01)
    assert logic.report.missed == 1 and logic.step is Step.IDLE


def test_no_result_is_a_timeout() -> None:
    logic = SoftPlcLogic(1, TIMING)
    t = start(logic)
    logic.scan(station(TACK, BUSY, ONLINE, hb=3, inspection_id=1, part_sequence_echo=1), t + 0.01)
    logic.scan(station(BUSY, ONLINE, hb=4, inspection_id=1, part_sequence_echo=1), t + 1.2)
    assert logic.report.timeouts == 1 and logic.step is Step.IDLE


def test_station_errors_are_cleared_with_a_pulse_and_counted() -> None:
    logic = SoftPlcLogic(2, TIMING)
    start(logic)
    logic.step = Step.IDLE  # as if the first part was done
    err = station(ERROR, ONLINE, hb=5, error_code=ErrorCode.CAMERA_TIMEOUT)
    logic.scan(err, 1.0)
    assert logic.inputs.has(ControlBit.CLEAR_ERROR)
    logic.scan(err, 1.01)
    assert not logic.inputs.has(ControlBit.CLEAR_ERROR), "a pulse, not a level"
    logic.scan(station(READY, ONLINE, hb=6), 1.02)
    assert logic.inputs.has(ControlBit.TRIGGER), "READY again: the next part goes"
    assert logic.report.station_errors["CAMERA_TIMEOUT"] == 1


def test_done_after_the_last_part_even_while_the_station_shows_error() -> None:
    logic = SoftPlcLogic(1, TIMING)
    t = start(logic)
    logic.scan(station(TACK, BUSY, ONLINE, hb=2, inspection_id=1, part_sequence_echo=1), t + 0.01)
    err = station(VALID, ERROR, ONLINE, hb=2, inspection_id=1, part_sequence_echo=1, verdict=4)
    logic.scan(err, t + 0.02)
    logic.scan(replace(err, status=int(ERROR | ONLINE), verdict=0), t + 0.03)
    logic.scan(replace(err, status=int(ERROR), verdict=0), t + 0.04)
    assert logic.done and logic.report.acked == 1 and dict(logic.report.verdicts) == {"ERROR": 1}


def test_load_recipe_first() -> None:
    logic = SoftPlcLogic(1, TIMING, product_code=202)
    logic.scan(station(READY, ONLINE, hb=1), 0.0)
    assert logic.inputs.has(ControlBit.CMD_EXECUTE)
    assert (logic.inputs.command_code, logic.inputs.command_arg) == (1, 202)
    logic.scan(station(FAILED, ERROR, ONLINE, hb=2, error_code=9), 0.01)
    assert logic.done and not logic.inputs.has(ControlBit.CMD_EXECUTE)
    assert logic.report.recipe_change == "product code 202 failed: UNKNOWN_PRODUCT_CODE"


def test_a_line_that_does_not_wait_triggers_on_its_period() -> None:
    logic = SoftPlcLogic(None, replace(TIMING, part_period_s=0.05))
    start(logic)
    assert logic.report.parts == 1
    t = 0.02
    logic.scan(station(TACK, MISSED, ONLINE, hb=3), t)  # the station was not ready
    logic.scan(station(ONLINE, hb=3), 0.03)
    assert logic.report.parts == 1, "not before the next period"
    logic.scan(station(ONLINE, hb=3), 0.061)
    assert logic.report.parts == 2, "the next part comes whether READY or not"
    assert logic.report.missed == 1
