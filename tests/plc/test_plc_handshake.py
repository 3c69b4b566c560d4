"""The handshake state machine, as tables: a script of PLC writes and station events, and the
station block expected after it. No sockets, no clock: times are given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aoi.types import Verdict
from plc.events import ActiveRecipe, PartResult, RecipeChangeRequested, TriggerAccepted
from plc.handshake import Handshake, Timing
from plc.registers import ControlBit, ErrorCode, PlcInputs, StatusBit

EN, TRIG, ACK, CMD, CLR = (
    ControlBit.TRIGGER_ENABLE,
    ControlBit.TRIGGER,
    ControlBit.RESULT_ACK,
    ControlBit.CMD_EXECUTE,
    ControlBit.CLEAR_ERROR,
)
READY, TACK, BUSY, VALID, TOGGLE, MISSED, DONE, FAILED, ERROR, ONLINE = StatusBit

TIMING = Timing(
    heartbeat_period_s=0.1,
    watchdog_periods=3,
    require_plc_heartbeat=False,
    result_ack_timeout_s=1.0,
    busy_timeout_s=2.0,
)
RECIPE = ActiveRecipe(101, 0x1234ABCD, "board-a")
Op = Callable[[Handshake], Any]


def plc(t: float, *bits: ControlBit, **fields: Any) -> Op:
    control = fields.pop("control", sum(int(b) for b in bits))
    return lambda hs: hs.step(PlcInputs(control=control, **fields), t)


def ready() -> Op:
    return lambda hs: hs.set_station_ready(RECIPE)


def result(t: float, verdict: Verdict, seq: int, error: ErrorCode = ErrorCode.NONE) -> Op:
    part = PartResult(seq, verdict, defect_count=int(verdict is Verdict.NG), error_code=error)
    return lambda hs: hs.post_result(part, t)


def call(name: str, *args: Any) -> Op:
    return lambda hs: getattr(hs, name)(*args)


#: A part accepted and inspected OK, its result not yet acknowledged.
ONE_PART = [
    ready(),
    plc(0.0, EN),
    plc(0.01, EN, TRIG, part_sequence=5, serial="SN-5"),
    plc(0.02, EN),
    result(0.03, Verdict.OK, 5),
]

ROWS: list[tuple[str, list[Op], set[StatusBit], set[StatusBit], dict[str, int]]] = [
    ("not ready before the station says so", [plc(0.0, EN)], {ONLINE}, {READY}, {}),
    ("ready with TRIGGER_ENABLE", [ready(), plc(0.0, EN)], {READY, ONLINE}, {ERROR}, {}),
    ("not ready without TRIGGER_ENABLE", [ready(), plc(0.0)], {ONLINE}, {READY}, {}),
    (
        "trigger edge latches the part, acks and goes busy in one write",
        [ready(), plc(0.0, EN), plc(0.01, EN, TRIG, part_sequence=5)],
        {TACK, BUSY},
        {READY, VALID, MISSED},
        {"part_sequence_echo": 5, "inspection_id": 1, "verdict": 0},
    ),
    (
        "TRIGGER_ACK drops after TRIGGER drops",
        [ready(), plc(0.0, EN), plc(0.01, EN, TRIG, part_sequence=5), plc(0.02, EN)],
        {BUSY},
        {TACK, READY},
        {},
    ),
    (
        "result goes out with RESULTS_VALID and a toggle",
        ONE_PART,
        {VALID, TOGGLE},
        {BUSY, READY, TACK},
        {"verdict": 1, "part_sequence_echo": 5, "active_recipe": 101},
    ),
    (
        "RESULT_ACK clears RESULTS_VALID and the verdict; READY returns",
        [*ONE_PART, plc(0.04, EN, ACK)],
        {READY},
        {VALID},
        {"verdict": 0},
    ),
    (
        "trigger while busy is acknowledged as missed",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, TRIG, part_sequence=5),
            plc(0.02, EN),
            plc(0.03, EN, TRIG, part_sequence=6),
        ],
        {TACK, MISSED, BUSY},
        {READY},
        {"part_sequence_echo": 5, "inspection_id": 1},
    ),
    (
        "trigger while the result waits for RESULT_ACK is missed",
        [*ONE_PART, plc(0.04, EN, TRIG, part_sequence=6)],
        {TACK, MISSED, VALID},
        {BUSY},
        {"part_sequence_echo": 5, "verdict": 1},
    ),
    (
        "trigger before the station is ready is missed",
        [plc(0.0, EN), plc(0.01, EN, TRIG, part_sequence=5)],
        {TACK, MISSED},
        {BUSY},
        {"inspection_id": 0},
    ),
    (
        "trigger without TRIGGER_ENABLE is missed",
        [ready(), plc(0.0), plc(0.01, TRIG)],
        {TACK, MISSED},
        {BUSY},
        {},
    ),
    (
        "an accepted trigger clears MISSED_TRIGGER",
        [ready(), plc(0.0), plc(0.01, TRIG), plc(0.02, EN), plc(0.03, EN, TRIG, part_sequence=9)],
        {TACK, BUSY},
        {MISSED},
        {"part_sequence_echo": 9},
    ),
    (
        "a RESULT_ACK held from the last part does not acknowledge the next",
        [
            *ONE_PART,
            plc(0.04, EN, ACK),
            plc(0.05, EN, ACK, TRIG, part_sequence=6),
            plc(0.06, EN, ACK),
            result(0.07, Verdict.NG, 6),
            plc(0.08, EN, ACK),
        ],
        {VALID},
        {READY},
        {"verdict": 2, "part_sequence_echo": 6, "inspection_id": 2, "defect_count": 1},
    ),
    (
        "lost RESULT_ACK: ERROR after the ack timeout, the verdict turns ERROR",
        [*ONE_PART, plc(1.2, EN)],
        {VALID, ERROR},
        {READY},
        {"verdict": 4, "error_code": ErrorCode.RESULT_ACK_TIMEOUT},
    ),
    (
        "late RESULT_ACK clears the result; READY only after CLEAR_ERROR",
        [*ONE_PART, plc(1.2, EN), plc(1.3, EN, ACK), plc(1.4, EN)],
        {ERROR},
        {VALID, READY},
        {"verdict": 0},
    ),
    (
        "CLEAR_ERROR with the cause gone restores READY",
        [*ONE_PART, plc(1.2, EN), plc(1.3, EN, ACK), plc(1.4, EN, CLR)],
        {READY},
        {ERROR},
        {"error_code": 0},
    ),
    (
        "no result within the busy timeout: answered ERROR",
        [ready(), plc(0.0, EN), plc(0.01, EN, TRIG, part_sequence=5), plc(2.1, EN)],
        {VALID, ERROR},
        {BUSY, READY},
        {"verdict": 4, "error_code": ErrorCode.INSPECTION_TIMEOUT},
    ),
    (
        "the late result of an abandoned part is dropped",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, TRIG, part_sequence=5),
            plc(2.1, EN),
            result(2.2, Verdict.OK, 5),
        ],
        {VALID, ERROR},
        set(),
        {"verdict": 4},
    ),
    (
        "after INSPECTION_TIMEOUT READY waits while the cycle still holds the abandoned part",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, TRIG, part_sequence=5),
            plc(2.1, EN),  # busy timeout: answered ERROR
            plc(2.2, EN, ACK),
            plc(2.3, EN),
            plc(2.4, EN, CLR),  # the PLC clears the error: the pipeline is still on part 5
            plc(2.5, EN),
        ],
        set(),
        {READY, VALID, ERROR, BUSY},
        {"verdict": 0, "error_code": ErrorCode.NONE},
    ),
    (
        "the abandoned part's late result frees the cycle: READY rises",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, TRIG, part_sequence=5),
            plc(2.1, EN),
            plc(2.2, EN, ACK),
            plc(2.3, EN),
            plc(2.4, EN, CLR),
            plc(2.5, EN),
            result(2.6, Verdict.OK, 5),
            plc(2.7, EN),
        ],
        {READY},
        {VALID, ERROR, BUSY},
        {"verdict": 0},
    ),
    (
        "an ERROR verdict latches ERROR with its code",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, TRIG, part_sequence=5),
            result(0.03, Verdict.ERROR, 5, ErrorCode.CAMERA_TIMEOUT),
        ],
        {VALID, ERROR},
        {READY},
        {"verdict": 4, "error_code": ErrorCode.CAMERA_TIMEOUT},
    ),
    (
        "a fault during the inspection turns its OK into ERROR",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, TRIG, part_sequence=5),
            call("link_lost", "socket closed"),
            result(0.03, Verdict.OK, 5),
        ],
        {VALID, ERROR},
        {READY},
        {"verdict": 4, "error_code": ErrorCode.LINK_LOST},
    ),
    (
        "a fault after the result turns the unacknowledged OK into ERROR",
        [*ONE_PART, call("link_lost", "socket closed")],
        {VALID, ERROR},
        set(),
        {"verdict": 4, "error_code": ErrorCode.LINK_LOST},
    ),
    (
        "CLEAR_ERROR does nothing while the link is still down",
        [ready(), plc(0.0, EN), call("link_lost", "x"), plc(0.1, EN, CLR)],
        {ERROR},
        {READY},
        {"error_code": ErrorCode.LINK_LOST},
    ),
    (
        "link back and CLEAR_ERROR: READY again",
        [
            ready(),
            plc(0.0, EN),
            call("link_lost", "x"),
            call("link_restored", 0.2),
            plc(0.3, EN, CLR),
        ],
        {READY},
        {ERROR},
        {},
    ),
    (
        "station stopping answers the part in flight ERROR and drops ONLINE",
        [ready(), plc(0.0, EN), plc(0.01, EN, TRIG, part_sequence=5), call("stop", 0.02)],
        {VALID, ERROR},
        {ONLINE, READY, BUSY},
        {"verdict": 4, "error_code": ErrorCode.STATION_STOPPING},
    ),
    (
        "LOAD_RECIPE drops READY while it runs",
        [ready(), plc(0.0, EN), plc(0.01, EN, CMD, command_code=1, command_arg=202)],
        {ONLINE},
        {READY, DONE, FAILED},
        {},
    ),
    (
        "LOAD_RECIPE done: CMD_DONE and the new recipe",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, CMD, command_code=1, command_arg=202),
            call("command_finished", ActiveRecipe(202, 0xBEEF, "board-b")),
        ],
        {DONE},
        {READY, FAILED},
        {"active_recipe": 202, "recipe_checksum": 0xBEEF},
    ),
    (
        "CMD_DONE drops with CMD_EXECUTE; READY returns",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, CMD, command_code=1, command_arg=202),
            call("command_finished", ActiveRecipe(202, 0xBEEF, "board-b")),
            plc(0.5, EN),
        ],
        {READY},
        {DONE},
        {"active_recipe": 202},
    ),
    (
        "LOAD_RECIPE of an unknown product: CMD_FAILED, ERROR, old recipe",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, CMD, command_code=1, command_arg=999),
            call("command_failed", ErrorCode.UNKNOWN_PRODUCT_CODE, "no recipe has 999"),
        ],
        {FAILED, ERROR},
        {READY, DONE},
        {"error_code": ErrorCode.UNKNOWN_PRODUCT_CODE, "active_recipe": 101},
    ),
    (
        "a trigger during a recipe change is missed",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, CMD, command_code=1, command_arg=202),
            plc(0.02, EN, CMD, TRIG, command_code=1, command_arg=202),
        ],
        {TACK, MISSED},
        {BUSY},
        {},
    ),
    (
        "a command waits for the part in flight",
        [
            ready(),
            plc(0.0, EN),
            plc(0.01, EN, TRIG, part_sequence=5),
            plc(0.02, EN, CMD, command_code=2, command_arg=0),
        ],
        {BUSY, ONLINE},
        {DONE},
        {},
    ),
    (
        "SET_ONLINE 0: offline, not ready",
        [ready(), plc(0.0, EN), plc(0.01, EN, CMD, command_code=2, command_arg=0)],
        {DONE},
        {ONLINE, READY},
        {},
    ),
    (
        "unknown command: CMD_FAILED with its code, no ERROR",
        [ready(), plc(0.0, EN), plc(0.01, EN, CMD, command_code=77)],
        {FAILED},
        {ERROR, DONE},
        {"error_code": ErrorCode.UNKNOWN_COMMAND},
    ),
    (
        "LOAD_RECIPE with a product code out of range",
        [ready(), plc(0.0, EN), plc(0.01, EN, CMD, command_code=1, command_arg=70000)],
        {FAILED},
        {ERROR},
        {"error_code": ErrorCode.BAD_REGISTER_VALUE},
    ),
    (
        "SET_ONLINE with an argument other than 0 or 1",
        [ready(), plc(0.0, EN), plc(0.01, EN, CMD, command_code=2, command_arg=5)],
        {FAILED, ONLINE},
        set(),
        {"error_code": ErrorCode.BAD_REGISTER_VALUE},
    ),
    (
        "undefined control bits: ERROR, and a trigger in them is missed",
        [ready(), plc(0.0, EN), plc(0.01, control=0xFF02)],
        {ERROR, TACK, MISSED},
        {READY, BUSY},
        {"error_code": ErrorCode.BAD_REGISTER_VALUE},
    ),
    (
        "a clean control word and CLEAR_ERROR recover",
        [ready(), plc(0.0, EN), plc(0.01, control=0xFF02), plc(0.02, EN), plc(0.03, EN, CLR)],
        {READY},
        {ERROR},
        {},
    ),
]


@pytest.mark.parametrize(
    ("ops", "on", "off", "fields"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_handshake_table(
    ops: list[Op], on: set[StatusBit], off: set[StatusBit], fields: dict[str, int]
) -> None:
    hs = Handshake(TIMING)
    for op in ops:
        op(hs)
    out = hs.outputs
    assert {b for b in StatusBit if out.has(b)} >= on, f"status {out.status:#06x}"
    assert not {b for b in StatusBit if out.has(b)} & off, f"status {out.status:#06x}"
    for name, value in fields.items():
        assert getattr(out, name) == value, name


def _beat(hs: Handshake, t: float, hb: int, *bits: ControlBit) -> None:
    hs.step(PlcInputs(control=sum(int(b) for b in bits), plc_heartbeat=hb), t)


@pytest.mark.parametrize(
    ("stop_after_s", "check_at_s", "lost"),
    [
        (0.2, 0.45, False),  # 250 ms since the last change: within 3 periods of 100 ms
        (0.2, 0.51, True),  # 310 ms: lost
    ],
)
def test_plc_heartbeat_watchdog(stop_after_s: float, check_at_s: float, lost: bool) -> None:
    hs = Handshake(Timing(heartbeat_period_s=0.1, require_plc_heartbeat=True))
    hs.set_station_ready(RECIPE)
    _beat(hs, 0.0, 1, EN)
    assert not hs.outputs.has(READY), "no READY before the PLC heartbeat is seen to change"
    t, hb = 0.1, 1
    while t <= stop_after_s + 1e-9:
        hb += 1
        _beat(hs, t, hb, EN)
        t += 0.1
    assert hs.outputs.has(READY)
    t = stop_after_s
    while t < check_at_s:  # the link looks every 10 ms and sees no change
        _beat(hs, t, hb, EN)
        t += 0.01
    _beat(hs, check_at_s, hb, EN)
    assert hs.outputs.has(READY) is not lost
    assert hs.outputs.has(ERROR) is lost
    if lost:
        assert hs.outputs.error_code == ErrorCode.PLC_HEARTBEAT_LOST
        _beat(hs, check_at_s + 0.01, hb, EN, CLR)
        assert hs.outputs.has(ERROR), "CLEAR_ERROR cannot clear while the heartbeat is stale"
        _beat(hs, check_at_s + 0.02, hb + 1, EN)
        _beat(hs, check_at_s + 0.03, hb + 1, EN, CLR)
        assert hs.outputs.has(READY) and not hs.outputs.has(ERROR)


def test_station_heartbeat_counts_periods() -> None:
    hs = Handshake(TIMING)
    beats = []
    for i in range(10):
        hs.step(PlcInputs(), i * 0.05)
        beats.append(hs.outputs.station_heartbeat)
    assert beats == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_events_tell_the_link_what_to_do() -> None:
    hs = Handshake(TIMING)
    hs.set_station_ready(RECIPE)
    hs.step(PlcInputs(control=int(EN)), 0.0)
    events = hs.step(PlcInputs(control=int(EN | TRIG), part_sequence=42, serial="LOT-7"), 0.01)
    assert events == [TriggerAccepted(1, 42, "LOT-7")]
    assert hs.post_result(PartResult(41, Verdict.OK), 0.02) is False, "not the part in flight"
    other_attempt = PartResult(42, Verdict.OK, inspection_id=7)
    assert hs.post_result(other_attempt, 0.02) is False, "same part, another inspection"
    assert hs.post_result(PartResult(42, Verdict.OK, inspection_id=1), 0.02) is True
    hs.step(PlcInputs(control=int(EN | ACK)), 0.03)
    events = hs.step(PlcInputs(control=int(EN | CMD), command_code=1, command_arg=202), 0.04)
    assert RecipeChangeRequested(202) in events


def test_inspection_ids_are_new_for_every_accepted_trigger() -> None:
    hs = Handshake(TIMING)
    hs.set_station_ready(RECIPE)
    ids = []
    t = 0.0
    for seq in range(1, 6):
        hs.step(PlcInputs(control=int(EN)), t)
        hs.step(PlcInputs(control=int(EN | TRIG), part_sequence=seq), t + 0.001)
        ids.append(hs.outputs.inspection_id)
        hs.step(PlcInputs(control=int(EN)), t + 0.002)
        hs.post_result(PartResult(seq, Verdict.OK), t + 0.003)
        hs.step(PlcInputs(control=int(EN | ACK)), t + 0.004)
        t += 0.01
    assert ids == [1, 2, 3, 4, 5]
    assert hs.counters.accepted == 5 and hs.counters.acked == 5


def test_a_stall_of_the_station_is_not_blamed_on_the_plc() -> None:
    """The station did not look for 2 s (a recipe load on a loaded CPU): the PLC's writes
    waited in the same stall, so the watchdog counts only the time it watched."""
    hs = Handshake(Timing(heartbeat_period_s=0.1, require_plc_heartbeat=True))
    hs.set_station_ready(RECIPE)
    for n in range(4):
        _beat(hs, n * 0.1, n + 1, EN)
    assert hs.outputs.has(READY)
    _beat(hs, 2.3, 4, EN)  # 2 s later, the heartbeat as it was before the stall
    assert hs.outputs.has(READY) and not hs.outputs.has(ERROR)
    _beat(hs, 2.31, 5, EN)  # the PLC's write that waited in the stall arrives
    assert hs.outputs.has(READY)
    # A PLC that really stops is still caught: no change over 3 watched periods.
    t = 2.31
    while t < 2.65:
        _beat(hs, t, 5, EN)
        t += 0.01
    assert hs.outputs.error_code == ErrorCode.PLC_HEARTBEAT_LOST
