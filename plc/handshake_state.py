"""The state of the station's side of the PLC handshake, and how the PLC reads it.

:class:`HandshakeState` holds everything the handshake remembers (phase, command, recipe, the
part in flight, the fault latch, counters) and derives from it what the PLC sees: READY and the
reason it is low, the error code, and the whole station block (:attr:`HandshakeState.outputs`).
Faults latch here. The rules that change the state, on what the PLC writes and on what the
station reports, are :class:`plc.handshake.Handshake`'s. Pure: no I/O, no clock, no threads.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from aoi.types import Verdict
from plc.events import ActiveRecipe, Event, FaultCleared, FaultRaised, PartResult
from plc.protocol import CommandCode, ControlBit, ErrorCode, PlcInputs, StationOutputs, StatusBit


@dataclass(frozen=True)
class Timing:
    """The handshake's clocks, in seconds."""

    heartbeat_period_s: float = 0.25
    #: The PLC heartbeat is lost when it has not changed for this many periods.
    watchdog_periods: int = 3
    #: READY needs a live PLC heartbeat (set False for a PLC program without one).
    require_plc_heartbeat: bool = True
    #: A result not acknowledged within this time latches RESULT_ACK_TIMEOUT (it stays valid).
    result_ack_timeout_s: float = 5.0
    #: A part with no result within this time is answered ERROR / INSPECTION_TIMEOUT.
    busy_timeout_s: float = 10.0

    @property
    def watchdog_s(self) -> float:
        return self.heartbeat_period_s * self.watchdog_periods


class Phase(enum.Enum):
    IDLE = "idle"  # no part in flight, no result waiting
    BUSY = "busy"  # trigger accepted, inspecting
    RESULT = "result"  # RESULTS_VALID, waiting for RESULT_ACK


class CommandPhase(enum.Enum):
    NONE = "none"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass
class Counters:
    triggers: int = 0
    accepted: int = 0
    missed: int = 0
    results: int = 0
    acked: int = 0
    stale_results: int = 0
    ack_timeouts: int = 0
    busy_timeouts: int = 0
    #: Results dropped unacknowledged by a CLEAR_ERROR (the PLC never read them).
    abandoned_results: int = 0
    faults: dict[str, int] = field(default_factory=dict)


class HandshakeState:
    """The station block's state; :class:`plc.handshake.Handshake` adds the rules."""

    def __init__(
        self, timing: Timing | None = None, *, online: bool = True, link_up: bool = True
    ) -> None:
        self.timing = timing or Timing()
        self.online = online
        self.phase = Phase.IDLE
        self.command = CommandPhase.NONE
        self.command_error = ErrorCode.NONE
        self.station_ready = False
        self.stopping = False
        #: A client starts with the link down; that is no fault until it has been up once.
        self.link_up = link_up
        self.recipe: ActiveRecipe | None = None
        self.inspection_id = 0
        self.part_sequence = 0
        self.result: PartResult | None = None
        #: The inspection id of the part the cycle took and has not answered yet (even after
        #: INSPECTION_TIMEOUT abandoned it): READY waits for it, or the next part would queue
        #: behind a pipeline that is still busy and time out too.
        self.cycle_holds: int | None = None
        self.toggle = False
        self.trigger_acked = False
        self.missed = False
        self.conditions: dict[ErrorCode, str] = {}
        self.latched = ErrorCode.NONE
        self.latched_message = ""
        self.counters = Counters()
        self._heartbeat = 0
        self._next_beat_s: float | None = None
        self._last: PlcInputs | None = None
        self._plc_beat: int | None = None
        self._plc_beat_at_s = 0.0
        #: When the PLC block was last looked at (a longer gap is a stall of the station).
        self._watched_at_s: float | None = None
        self.plc_alive = False
        self._busy_since_s = 0.0
        self._result_since_s = 0.0
        self._ack_timeout_raised = False
        self._ack_armed = True
        self._command_code = CommandCode.NONE
        self._events: list[Event] = []

    # -- what the PLC reads -----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """READY: a trigger now would be accepted (and the previous trigger handshake is over)."""
        return not self.trigger_acked and not self._not_ready_reason()

    @property
    def error_code(self) -> ErrorCode:
        if self.latched is not ErrorCode.NONE:
            return self.latched
        if self.command is CommandPhase.FAILED:
            return self.command_error
        return ErrorCode.NONE

    @property
    def outputs(self) -> StationOutputs:
        bits = [
            (StatusBit.READY, self.ready),
            (StatusBit.TRIGGER_ACK, self.trigger_acked),
            (StatusBit.BUSY, self.phase is Phase.BUSY),
            (StatusBit.RESULTS_VALID, self.phase is Phase.RESULT),
            (StatusBit.RESULT_TOGGLE, self.toggle),
            (StatusBit.MISSED_TRIGGER, self.missed),
            (StatusBit.CMD_DONE, self.command is CommandPhase.DONE),
            (StatusBit.CMD_FAILED, self.command is CommandPhase.FAILED),
            (StatusBit.ERROR, self.latched is not ErrorCode.NONE),
            (StatusBit.ONLINE, self.online and not self.stopping),
        ]
        status = sum(int(bit) for bit, on in bits if on)
        r = self.result
        return StationOutputs(
            status=status,
            station_heartbeat=self._heartbeat,
            inspection_id=self.inspection_id,
            part_sequence_echo=self.part_sequence,
            verdict=int(r.verdict) if r is not None and self.phase is Phase.RESULT else 0,
            defect_count=r.defect_count if r else 0,
            top_class=r.top_class if r else 0,
            top_score_permille=r.top_score_permille if r else 0,
            active_recipe=self.recipe.product_code if self.recipe else 0,
            error_code=int(self.error_code),
            cycle_time_us=r.cycle_time_us if r else 0,
            recipe_checksum=self.recipe.checksum if self.recipe else 0,
        )

    @property
    def result_collected(self) -> bool:
        """No result waits for RESULT_ACK and the PLC has let go of RESULT_ACK again.

        The PLC's handshake for a part ends when it has seen RESULTS_VALID drop after its ACK
        and dropped the ACK itself; a station that closes before that leaves the PLC waiting.
        """
        ack_high = self._last is not None and self._last.has(ControlBit.RESULT_ACK)
        return self.phase is not Phase.RESULT and not ack_high

    def _not_ready_reason(self) -> str:
        """Why a trigger now would be missed ('' when READY, judged before TRIGGER_ACK rises)."""
        plc_ok = self.plc_alive or not self.timing.require_plc_heartbeat
        enabled = self._last is not None and self._last.has(ControlBit.TRIGGER_ENABLE)
        checks = [
            (self.stopping, "the station is stopping"),
            (not self.link_up, "the link is down"),
            (self.latched is not ErrorCode.NONE, f"ERROR is latched ({self.latched.name})"),
            (bool(self.conditions), f"faults active: {sorted(c.name for c in self.conditions)}"),
            (not self.online, "the station is offline"),
            (not enabled, "TRIGGER_ENABLE is off"),
            (not plc_ok, "no live PLC heartbeat yet"),
            (not self.station_ready, "the station is not ready (starting or loading)"),
            (self.phase is Phase.BUSY, "the previous part is still being inspected"),
            (
                self.cycle_holds is not None,
                f"the cycle still inspects abandoned inspection {self.cycle_holds}",
            ),
            (self.phase is Phase.RESULT, "the previous result is not acknowledged"),
            (self.command is not CommandPhase.NONE, f"command {self._command_code.name} runs"),
        ]
        return next((why for bad, why in checks if bad), "")

    def drain_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # -- faults -----------------------------------------------------------------------------

    def _latch(self, code: ErrorCode, message: str) -> None:
        self.counters.faults[code.name] = self.counters.faults.get(code.name, 0) + 1
        if self.latched is ErrorCode.NONE:
            self.latched, self.latched_message = code, message
        r = self.result
        if self.phase is Phase.RESULT and r is not None and r.verdict is not Verdict.ERROR:
            # While ERROR is set the verdict register shows ERROR or nothing: a result not yet
            # acknowledged cannot be vouched for after a fault (the PLC may not have read it).
            self.result = PartResult(r.part_sequence, Verdict.ERROR, error_code=code)
        self._events.append(FaultRaised(code, message))

    def _set_condition(self, code: ErrorCode, message: str) -> None:
        if code not in self.conditions:
            self.conditions[code] = message
            self._latch(code, message)

    def _clear_condition(self, code: ErrorCode) -> None:
        if self.conditions.pop(code, None) is not None:
            self._events.append(FaultCleared(code))

    def hold_fault(self, code: ErrorCode, message: str) -> None:
        """A fault of the station's own (its journal cannot be written): READY low and ERROR
        latched with ``code`` until :meth:`release_fault`, then CLEAR_ERROR clears the latch."""
        self._set_condition(code, message)

    def release_fault(self, code: ErrorCode) -> None:
        self._clear_condition(code)
