"""The link against real pymodbus servers and clients on 127.0.0.1 (ports chosen by the OS).

The test thread plays the station's cycle (``wait_trigger`` then ``publish``); the PLC is either
the soft PLC or a hand-driven register set (``HandPlc``) whose every write the test controls.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import pytest
from pymodbus.client import ModbusTcpClient

from aoi.config import PlcConfig
from aoi.types import Defect, Defects, ErrorKind, InspectionResult, Trigger, Verdict
from plc.client import RegisterClient
from plc.config import register_map
from plc.errors import PlcLinkError, UnknownProductCode
from plc.events import ActiveRecipe
from plc.link import StationLink
from plc.peer import LinkState, RegisterPeer
from plc.registers import (
    ControlBit,
    ErrorCode,
    PlcInputs,
    RegisterMap,
    StationOutputs,
    StatusBit,
    decode_station,
    encode_plc,
)
from plc.server import RegisterServer
from plc.session import open_plc

pytestmark = pytest.mark.integration  # real Modbus/TCP servers and clients on 127.0.0.1

EN, TRIG, ACK, CMD, CLR = (
    ControlBit.TRIGGER_ENABLE,
    ControlBit.TRIGGER,
    ControlBit.RESULT_ACK,
    ControlBit.CMD_EXECUTE,
    ControlBit.CLEAR_ERROR,
)
RECIPE = ActiveRecipe(101, 0x1234ABCD, "board-a")
FAST = PlcConfig(
    heartbeat_period_ms=50,
    require_plc_heartbeat=False,
    poll_period_ms=2,
    response_timeout_ms=200,
    reconnect_min_ms=20,
    reconnect_max_ms=100,
    result_ack_timeout_ms=300,
    busy_timeout_ms=2000,
)


def inspection(
    trigger: Trigger,
    verdict: Verdict = Verdict.OK,
    n: int = 1,
    kind: ErrorKind = ErrorKind.CAMERA_TIMEOUT,
) -> InspectionResult:
    """What the pipeline would publish for the trigger; ``kind`` is an ERROR's kind."""
    one = [Defect(2, "short", (10, 10, 20, 20), 40, 0.876)] if verdict is Verdict.NG else []
    return InspectionResult(
        inspection_id=trigger.inspection_id or n,  # as the pipeline numbers a PLC's part
        frame_id=n,
        frame_name="",
        recipe_name="board-a",
        recipe_hash="ab" * 32,
        model_hash="m",
        backend="test",
        verdict=verdict,
        defects=Defects.from_items(one),
        review_defects=Defects.empty(),
        stages_ms={},
        cycle_ms=12.5,
        over_budget=False,
        registration=None,
        error="no frame within 1 s" if verdict is Verdict.ERROR else "",
        error_kind=kind if verdict is Verdict.ERROR else ErrorKind.NONE,
        part_sequence=trigger.part_sequence,
        serial=trigger.serial,
    )


@dataclass
class HandPlc:
    """The PLC's side, written by hand: every register write is the test's."""

    peer: RegisterPeer
    layout: RegisterMap
    inputs: PlcInputs = field(default_factory=PlcInputs)

    def write(self, *bits: ControlBit, control: int | None = None, **fields: object) -> None:
        value = sum(int(b) for b in bits) if control is None else control
        self.inputs = replace(self.inputs, control=value, **fields)  # type: ignore[arg-type]
        self.peer.write(self.layout.plc_block.start, encode_plc(self.layout, self.inputs))

    def status(self) -> StationOutputs:
        return decode_station(self.layout, self.peer.read(self.layout.station_block))

    def wait_for(
        self, what: str, ok: Callable[[StationOutputs], bool], timeout_s: float = 30.0
    ) -> StationOutputs:
        deadline = time.monotonic() + timeout_s
        while True:
            out = self.status()
            if ok(out):
                return out
            if time.monotonic() > deadline:
                pytest.fail(f"station never showed {what}; status {out}")
            time.sleep(0.002)

    def wait_bits(self, *on: StatusBit, off: tuple[StatusBit, ...] = ()) -> StationOutputs:
        names = (
            "+".join(b.name or "" for b in on) + " without " + "+".join(b.name or "" for b in off)
        )
        return self.wait_for(
            names, lambda o: all(o.has(b) for b in on) and not any(o.has(b) for b in off)
        )


@contextlib.contextmanager
def station_server(
    settings: PlcConfig = FAST, **link_kwargs: object
) -> Iterator[tuple[StationLink, HandPlc]]:
    """A station serving on a free port, and a hand-driven PLC polling it."""
    layout = register_map(settings)
    with (
        RegisterServer(layout.whole, layout.plc_block, "127.0.0.1", 0) as server,
        StationLink(server, settings, **link_kwargs) as link,  # type: ignore[arg-type]
        RegisterClient("127.0.0.1", server.port, timeout_s=1.0) as client,
    ):
        client.connect()
        link.set_station_ready(RECIPE)
        yield link, HandPlc(client, layout)


def take_part(link: StationLink, plc: HandPlc, part_sequence: int) -> Trigger:
    """The PLC triggers one part when READY; the cycle takes it; the PLC drops TRIGGER."""
    plc.write(EN)
    plc.wait_bits(StatusBit.READY)
    plc.write(EN, TRIG, part_sequence=part_sequence)
    plc.wait_bits(StatusBit.TRIGGER_ACK, StatusBit.BUSY)  # one write raises both
    trigger = link.wait_trigger(1.0)
    assert trigger is not None
    plc.write(EN)
    return trigger


def run_cycle(link: StationLink, parts: int, verdicts: list[Verdict]) -> None:
    """The station's cycle: inspect every trigger with a fixed verdict sequence."""
    done = 0
    deadline = time.monotonic() + 20
    while done < parts and time.monotonic() < deadline:
        trigger = link.wait_trigger(0.1)
        if trigger is None:
            continue
        link.publish(inspection(trigger, verdicts[done % len(verdicts)], done + 1))
        done += 1
    assert done == parts


@pytest.mark.parametrize("role", ["server", "client"])
def test_full_handshake_with_the_soft_plc(role: str) -> None:
    settings = FAST.model_copy(update={"require_plc_heartbeat": True})
    with open_plc("sim", settings, role=role, sim_parts=20) as session:  # type: ignore[arg-type]
        assert session is not None and session.sim is not None
        # The overrides went into the link's config: the role asked for, the real address.
        config, peer = session.link.config, session.link.peer
        assert isinstance(peer, RegisterServer | RegisterClient)
        assert config.role == role
        assert (config.host, config.port) == ("127.0.0.1", peer.port) and peer.port != FAST.port
        session.link.set_station_ready(RECIPE)
        run_cycle(session.link, 20, [Verdict.OK, Verdict.NG, Verdict.REVIEW])
        assert session.sim.wait_done(5.0)
    report = session.sim.report
    assert session.summary() == {
        "parts": 20,
        "acked": 20,
        "missed": 0,
        "mismatched": 0,
        "timeouts": 0,
        "write_ms": session.summary()["write_ms"],
        # The line received each inspection's own verdict (OK, NG, REVIEW in turn).
        "line_verdicts": {"OK": 7, "NG": 7, "REVIEW": 6},
    }
    assert dict(report.verdicts) == {"OK": 7, "NG": 7, "REVIEW": 6}
    assert len(session.link.write_ms) == 20
    assert session.link.state is LinkState.CLOSED


def test_one_part_register_by_register() -> None:
    with station_server() as (link, plc):
        plc.write(EN)
        plc.wait_bits(StatusBit.READY, StatusBit.ONLINE)
        plc.write(EN, TRIG, part_sequence=70_001, serial="SN-70001")
        out = plc.wait_bits(StatusBit.TRIGGER_ACK, StatusBit.BUSY, off=(StatusBit.READY,))
        assert (out.part_sequence_echo, out.inspection_id, out.verdict) == (70_001, 1, 0)
        trigger = link.wait_trigger(1.0)
        assert trigger is not None
        assert (trigger.part_sequence, trigger.serial) == (70_001, "SN-70001")
        assert trigger.inspection_id == out.inspection_id == 1  # one id for PLC, log and DB
        plc.write(EN)
        plc.wait_bits(StatusBit.BUSY, off=(StatusBit.TRIGGER_ACK,))
        link.publish(inspection(trigger, Verdict.NG))
        out = plc.wait_bits(StatusBit.RESULTS_VALID, StatusBit.RESULT_TOGGLE, off=(StatusBit.BUSY,))
        assert (out.verdict, out.defect_count, out.top_class, out.top_score_permille) == (
            2,
            1,
            2,
            876,
        )
        assert (out.cycle_time_us, out.active_recipe, out.recipe_checksum) == (
            12_500,
            101,
            0x1234ABCD,
        )
        plc.write(EN, ACK)
        out = plc.wait_bits(StatusBit.READY, off=(StatusBit.RESULTS_VALID,))
        assert out.verdict == 0
        plc.write(EN)
        assert link.health().acked == 1
        assert link.state is LinkState.UP, "a PLC is connected"
        plc.peer.disconnect()
        deadline = time.monotonic() + 30
        while link.state is not LinkState.LISTENING and time.monotonic() < deadline:
            time.sleep(0.005)
        assert link.state is LinkState.LISTENING, "serving, but no PLC connected"


def test_a_shutdown_waits_until_the_plc_has_let_go_of_its_last_ack() -> None:
    """The PLC's handshake ends when it drops RESULT_ACK after seeing RESULTS_VALID fall; a
    station that closed at the ACK itself would leave the PLC waiting for that edge."""
    with station_server() as (link, plc):
        trigger = take_part(link, plc, part_sequence=9)
        link.publish(inspection(trigger, Verdict.OK))
        plc.wait_bits(StatusBit.RESULTS_VALID)
        assert not link.wait_result_collected(0.05), "no ACK yet"
        plc.write(EN, ACK)
        plc.wait_bits(off=(StatusBit.RESULTS_VALID,))
        assert link.wait_result_acked(30.0)
        assert not link.wait_result_collected(0.05), "the PLC still holds RESULT_ACK"
        plc.write(EN)
        assert link.wait_result_collected(30.0)


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (ErrorKind.CAMERA_TIMEOUT, ErrorCode.CAMERA_TIMEOUT),
        (ErrorKind.BAD_FRAME, ErrorCode.BAD_FRAME),
        (ErrorKind.REGISTRATION, ErrorCode.INSPECTION_FAILED),
        (ErrorKind.INFERENCE, ErrorCode.INSPECTION_FAILED),
        (ErrorKind.OTHER, ErrorCode.INSPECTION_FAILED),
    ],
)
def test_an_error_result_carries_the_code_of_its_kind(kind: ErrorKind, code: ErrorCode) -> None:
    with station_server() as (link, plc):
        trigger = take_part(link, plc, part_sequence=5)
        link.publish(inspection(trigger, Verdict.ERROR, kind=kind))
        out = plc.wait_bits(StatusBit.RESULTS_VALID, StatusBit.ERROR)
        assert (out.verdict, out.error_code, out.part_sequence_echo) == (4, code, 5)


def test_trigger_while_busy_is_acknowledged_as_missed() -> None:
    with station_server() as (link, plc):
        trigger = take_part(link, plc, part_sequence=1)
        plc.wait_bits(StatusBit.BUSY, off=(StatusBit.TRIGGER_ACK,))
        plc.write(EN, TRIG, part_sequence=2)  # the next part, while part 1 is inspected
        out = plc.wait_bits(StatusBit.TRIGGER_ACK, StatusBit.MISSED_TRIGGER, StatusBit.BUSY)
        assert (out.part_sequence_echo, out.inspection_id) == (1, 1)
        assert link.wait_trigger(0.05) is None, "a missed trigger is not inspected"
        plc.write(EN)
        plc.wait_bits(StatusBit.BUSY, off=(StatusBit.TRIGGER_ACK,))
        link.publish(inspection(trigger, Verdict.OK))
        out = plc.wait_bits(StatusBit.RESULTS_VALID)
        assert (out.part_sequence_echo, out.verdict) == (1, 1)
        assert link.health().missed == 1


def test_trigger_while_the_result_waits_for_its_ack_is_missed() -> None:
    # An ack timeout far beyond the test: the missed trigger is seen whatever the machine's load.
    with station_server(FAST.model_copy(update={"result_ack_timeout_ms": 60_000})) as (link, plc):
        trigger = take_part(link, plc, part_sequence=1)
        # The station must see TRIGGER low before the next part's edge (it polls its registers).
        plc.wait_bits(StatusBit.BUSY, off=(StatusBit.TRIGGER_ACK,))
        link.publish(inspection(trigger, Verdict.OK))
        plc.wait_bits(StatusBit.RESULTS_VALID, off=(StatusBit.READY,))
        # The PLC has not acknowledged yet: the next trigger is missed, not inspected.
        plc.write(EN, TRIG, part_sequence=2)
        out = plc.wait_bits(
            StatusBit.TRIGGER_ACK, StatusBit.MISSED_TRIGGER, StatusBit.RESULTS_VALID
        )
        assert (out.part_sequence_echo, out.verdict) == (1, 1), "part 1's result still stands"
        assert link.wait_trigger(0.05) is None, "a missed trigger is not inspected"
        plc.write(EN)
        plc.write(EN, ACK)
        plc.wait_bits(StatusBit.READY, off=(StatusBit.RESULTS_VALID, StatusBit.ERROR))
        assert (link.health().missed, link.health().timeouts) == (1, 0)


def test_lost_result_ack() -> None:
    with station_server() as (link, plc):
        trigger = take_part(link, plc, part_sequence=1)
        link.publish(inspection(trigger, Verdict.OK))
        # The PLC never acknowledges. After the ack timeout: ERROR, and the verdict no longer
        # reads OK (the result stays valid, so a PLC reading late sees why).
        out = plc.wait_bits(StatusBit.ERROR, StatusBit.RESULTS_VALID, off=(StatusBit.READY,))
        assert (out.error_code, out.verdict) == (ErrorCode.RESULT_ACK_TIMEOUT, 4)
        assert out.part_sequence_echo == 1
        plc.write(EN, ACK)
        plc.wait_bits(StatusBit.ERROR, off=(StatusBit.RESULTS_VALID, StatusBit.READY))
        plc.write(EN, CLR)
        plc.wait_bits(StatusBit.READY, off=(StatusBit.ERROR,))
        assert link.health().timeouts == 1


def test_plc_heartbeat_stopping_drops_ready_after_three_periods() -> None:
    period_ms = 100
    settings = FAST.model_copy(
        update={"heartbeat_period_ms": period_ms, "require_plc_heartbeat": True}
    )
    layout = register_map(settings)
    beats: list[float] = []
    drops: list[tuple[float, StationOutputs]] = []
    hb_at = layout.addresses["plc_heartbeat"]
    st = layout.station_block

    def observe(start: int, words: list[int], remote: bool) -> None:
        if remote and start <= hb_at < start + len(words):
            value = words[hb_at - start]
            if not beats or value != observe.last:  # type: ignore[attr-defined]
                beats.append(time.monotonic())
            observe.last = value  # type: ignore[attr-defined]
        if not remote and start == st.start:
            out = decode_station(layout, words)
            if out.has(StatusBit.ERROR) and not drops:
                drops.append((time.monotonic(), out))

    observe.last = -1  # type: ignore[attr-defined]
    with open_plc("sim", settings, sim_parts=None) as session:
        assert session is not None and session.sim is not None
        server = session.link.peer
        assert isinstance(server, RegisterServer)
        server.add_write_observer(observe)
        session.link.set_station_ready(RECIPE)
        stop = threading.Event()
        cycle = threading.Thread(target=_cycle_until, args=(session.link, stop), name="cycle")
        cycle.start()
        try:
            deadline = time.monotonic() + 30  # hang guards only: no speed is asserted here
            # Parts come faster than beats (a 100 ms period): wait for both, not parts alone.
            while (session.sim.report.acked < 3 or len(beats) < 2) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert session.sim.report.acked >= 3, "parts flow while both heartbeats run"
            assert len(beats) >= 2, "the PLC's heartbeat advances"
            session.sim.freeze_heartbeat()
            deadline = time.monotonic() + 30
            while not drops and time.monotonic() < deadline:
                time.sleep(0.005)
            assert drops, "READY never dropped"
            dropped_at, out = drops[0]
            assert not out.has(StatusBit.READY)
            assert out.error_code == ErrorCode.PLC_HEARTBEAT_LOST
            # The watchdog waits its three periods after the last beat it saw, never less (a
            # loaded machine only makes the drop later; the epsilon is clock granularity).
            since_last_beat_ms = (dropped_at - beats[-1]) * 1000
            assert since_last_beat_ms >= 3 * period_ms - 5, "not before the watchdog time"
            acked = session.sim.report.acked
            session.sim.freeze_heartbeat(False)  # the PLC comes back and clears the error
            deadline = time.monotonic() + 30
            while session.sim.report.acked <= acked + 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert session.sim.report.acked > acked + 2, "parts flow again after CLEAR_ERROR"
        finally:
            stop.set()
            cycle.join()
    assert session.sim.report.station_errors["PLC_HEARTBEAT_LOST"] == 1


def _cycle_until(link: StationLink, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        trigger = link.wait_trigger(0.05)
        if trigger is not None:
            n += 1
            link.publish(inspection(trigger, Verdict.OK, n))


def test_link_drop_mid_cycle_reconnects_and_never_shows_a_stale_ok() -> None:
    """Station as client; the PLC's server goes away during a part and comes back."""
    settings = FAST.model_copy(update={"role": "client"})
    layout = register_map(settings)
    seen: list[StationOutputs] = []

    def observe(start: int, words: list[int], remote: bool) -> None:
        if remote and start == layout.station_block.start:
            seen.append(decode_station(layout, words))

    first = contextlib.ExitStack()
    with first:
        plc_server = first.enter_context(
            RegisterServer(layout.whole, layout.station_block, "127.0.0.1", 0, "plc")
        )
        port = plc_server.port
        plc_server.add_write_observer(observe)
        plc = HandPlc(plc_server, layout)
        client = RegisterClient("127.0.0.1", port, timeout_s=0.2)
        with client, StationLink(client, settings) as link:
            link.set_station_ready(RECIPE)
            plc.write(EN)
            plc.wait_bits(StatusBit.READY)
            plc.write(EN, TRIG, part_sequence=1)
            plc.wait_bits(StatusBit.TRIGGER_ACK, StatusBit.BUSY)
            trigger = link.wait_trigger(1.0)
            assert trigger is not None
            memory = plc_server.read(layout.whole)  # the PLC's memory survives the outage
            first.close()  # the network goes away mid-cycle
            link.publish(inspection(trigger, Verdict.OK))  # must not raise
            deadline = time.monotonic() + 30
            while link.state is not LinkState.DOWN and time.monotonic() < deadline:
                time.sleep(0.005)
            assert link.state is LinkState.DOWN
            with RegisterServer(
                layout.whole, layout.station_block, "127.0.0.1", port, "plc"
            ) as back:
                back.add_write_observer(observe)
                back.write(layout.whole.start, memory)
                plc = HandPlc(back, layout, inputs=replace(PlcInputs(), control=int(EN)))
                plc.write(EN)
                out = plc.wait_bits(StatusBit.ERROR, StatusBit.RESULTS_VALID)
                assert link.state is LinkState.UP
                assert (out.error_code, out.verdict, out.part_sequence_echo) == (
                    ErrorCode.LINK_LOST,
                    4,
                    1,
                )
                plc.write(EN, ACK)
                plc.wait_bits(off=(StatusBit.RESULTS_VALID,))
                plc.write(EN, CLR)
                plc.wait_bits(StatusBit.READY, off=(StatusBit.ERROR,))
                plc.write(EN, TRIG, part_sequence=2)
                plc.wait_bits(StatusBit.TRIGGER_ACK, StatusBit.BUSY)
                trigger = link.wait_trigger(1.0)
                assert trigger is not None and trigger.part_sequence == 2
                plc.write(EN)
                link.publish(inspection(trigger, Verdict.OK))
                out = plc.wait_bits(StatusBit.RESULTS_VALID)
                assert (out.verdict, out.part_sequence_echo) == (1, 2), "a fresh OK gets through"
    stale = [
        o
        for o in seen
        if o.has(StatusBit.RESULTS_VALID) and o.verdict == 1 and o.part_sequence_echo == 1
    ]
    assert not stale, "part 1 was never readable as OK after the link dropped"


def test_recipe_change_by_product_code() -> None:
    loaded: list[int] = []
    ready_while_loading: list[bool] = []
    recipes = {202: ActiveRecipe(202, 0xCAFE0202, "board-b")}

    def change(code: int) -> ActiveRecipe:
        ready_while_loading.append(link.health().ready)
        if code not in recipes:
            msg = f"no recipe has product_code = {code}"
            raise UnknownProductCode(msg)
        loaded.append(code)
        return recipes[code]

    with station_server(on_recipe_change=change) as (link, plc):
        plc.write(EN)
        plc.wait_bits(StatusBit.READY)
        plc.write(EN, CMD, command_code=1, command_arg=202)
        plc.wait_for("READY low", lambda o: not o.has(StatusBit.READY))
        assert link.wait_trigger(1.0) is None, "the cycle's thread ran the change and returned"
        out = plc.wait_bits(StatusBit.CMD_DONE, off=(StatusBit.READY, StatusBit.CMD_FAILED))
        assert (out.active_recipe, out.recipe_checksum) == (202, 0xCAFE0202)
        assert loaded == [202] and ready_while_loading == [False]
        plc.write(EN)
        plc.wait_bits(StatusBit.READY, off=(StatusBit.CMD_DONE,))

        plc.write(EN, CMD, command_code=1, command_arg=999)
        assert link.wait_trigger(1.0) is None
        out = plc.wait_bits(StatusBit.CMD_FAILED, StatusBit.ERROR, off=(StatusBit.READY,))
        assert (out.error_code, out.active_recipe) == (ErrorCode.UNKNOWN_PRODUCT_CODE, 202)
        plc.write(EN)
        plc.wait_bits(StatusBit.ERROR, off=(StatusBit.CMD_FAILED, StatusBit.READY))
        plc.write(EN, CLR)
        plc.wait_bits(StatusBit.READY, off=(StatusBit.ERROR,))


def test_malformed_register_values() -> None:
    with station_server() as (link, plc):
        plc.write(EN)
        plc.wait_bits(StatusBit.READY)
        # A word that is not a control word (a DINT mapped over it, say), with TRIGGER set in it.
        plc.write(control=0xFF02, part_sequence=3)
        out = plc.wait_bits(StatusBit.ERROR, StatusBit.TRIGGER_ACK, StatusBit.MISSED_TRIGGER)
        assert out.error_code == ErrorCode.BAD_REGISTER_VALUE and not out.has(StatusBit.BUSY)
        assert link.wait_trigger(0.05) is None
        plc.write(EN)
        plc.write(EN, CLR)
        plc.wait_bits(StatusBit.READY, off=(StatusBit.ERROR,))

        for code, arg, error in [
            (77, 0, ErrorCode.UNKNOWN_COMMAND),
            (1, 70_000, ErrorCode.BAD_REGISTER_VALUE),  # product codes are 1..65535
            (1, 0, ErrorCode.BAD_REGISTER_VALUE),
            (2, 5, ErrorCode.BAD_REGISTER_VALUE),  # SET_ONLINE takes 0 or 1
        ]:
            plc.write(EN, CMD, command_code=code, command_arg=arg)
            out = plc.wait_bits(StatusBit.CMD_FAILED, off=(StatusBit.READY, StatusBit.ERROR))
            assert out.error_code == error, (code, arg)
            plc.write(EN, command_code=0, command_arg=0)
            plc.wait_bits(StatusBit.READY, off=(StatusBit.CMD_FAILED,))

        # The PLC may not write the station's block, nor outside the map.
        with pytest.raises(PlcLinkError, match=r"exception 02 \(illegal data address\)"):
            plc.peer.write(link.layout.addresses["verdict"], [1])
        with pytest.raises(PlcLinkError, match=r"refused reading registers 40\.\.59"):
            plc.peer.read(type(link.layout.whole)(40, 20))
        assert plc.status().verdict == 0
        server = link.peer
        assert isinstance(server, RegisterServer)
        raw = ModbusTcpClient("127.0.0.1", port=server.port, timeout=1, retries=0)
        try:
            assert raw.connect()
            response = raw.write_coil(0, True)  # holding registers only
            assert response.isError() and response.exception_code == 1
        finally:
            raw.close()


def test_station_client_reconnects_with_backoff_when_no_plc_answers() -> None:
    settings = FAST.model_copy(update={"role": "client"})
    layout = register_map(settings)
    with RegisterServer(layout.whole, layout.station_block, "127.0.0.1", 0) as probe:
        pass  # bound and released: a port nobody listens on now
    client = RegisterClient("127.0.0.1", probe.port, timeout_s=0.1)
    with client, StationLink(client, settings) as link:
        deadline = time.monotonic() + 30  # a hang guard: the first attempt is refused at once
        while link.state is not LinkState.DOWN and time.monotonic() < deadline:
            time.sleep(0.005)
        health = link.health()
        assert link.state is LinkState.DOWN
        assert health.error_code == ErrorCode.NONE, "never connected: not ready, but no fault"
        assert not health.ready


def test_plc_away_longer_than_the_watchdog_finds_error_not_ok() -> None:
    """Station as server; the PLC's connection drops mid-cycle and comes back after 4 periods."""
    settings = FAST.model_copy(update={"require_plc_heartbeat": True})
    with station_server(settings) as (link, plc):
        plc.write(EN, plc_heartbeat=1)
        plc.write(EN, plc_heartbeat=2)
        plc.wait_bits(StatusBit.READY)
        plc.write(EN, TRIG, part_sequence=1, plc_heartbeat=3)
        plc.wait_bits(StatusBit.TRIGGER_ACK, StatusBit.BUSY)
        trigger = link.wait_trigger(1.0)
        assert trigger is not None
        plc.write(EN, plc_heartbeat=4)
        plc.peer.disconnect()  # the PLC's cable is pulled
        link.publish(inspection(trigger, Verdict.OK))
        time.sleep(4 * settings.heartbeat_period_ms / 1000)
        plc.peer.connect()
        # On a loaded machine the station may notice the silence a little after 4 periods:
        # wait for its error (a hang guard), then check that the result it shows is no OK.
        out = plc.wait_bits(StatusBit.RESULTS_VALID, StatusBit.ERROR)
        assert (out.verdict, out.error_code, out.part_sequence_echo) == (
            4,
            ErrorCode.PLC_HEARTBEAT_LOST,
            1,
        )
        plc.write(EN, ACK, plc_heartbeat=5)
        plc.wait_bits(off=(StatusBit.RESULTS_VALID,))
        plc.write(EN, CLR, plc_heartbeat=6)
        plc.wait_bits(StatusBit.READY, off=(StatusBit.ERROR,))


def test_the_station_goes_offline_and_back_on_its_own_command() -> None:
    """An operator's stop in the GUI: ONLINE and READY fall at once, and rise on start."""
    with station_server() as (link, plc):
        plc.write(EN)
        plc.wait_bits(StatusBit.READY, StatusBit.ONLINE)
        link.set_online(False)
        out = plc.status()  # written under the call, no poll needed
        assert not out.has(StatusBit.ONLINE) and not out.has(StatusBit.READY)
        link.set_online(True)
        plc.wait_bits(StatusBit.READY, StatusBit.ONLINE)
        plc.peer.disconnect()
