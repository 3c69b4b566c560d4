"""The station's side of the PLC handshake, as a pure state machine (no I/O, no clock, no threads).

The link feeds it what the PLC block holds (:meth:`Handshake.step`, with the time), the results
of the cycle (:meth:`Handshake.post_result`) and the outcome of commands; it answers with the
station block (:attr:`Handshake.outputs`) and events for the link to act on (a trigger to inspect,
a recipe to load). Everything a line integrator cares about is decided here, so it is tested
here, with tables, without a socket:

- a trigger edge while READY latches the part sequence and serial, takes a new inspection id,
  clears the previous result and raises TRIGGER_ACK and BUSY, all in one write;
- a trigger edge while not READY is still acknowledged, with MISSED_TRIGGER, so the PLC never hangs;
- a result is written together with RESULTS_VALID (and a toggled RESULT_TOGGLE) in one write;
  a rising RESULT_ACK clears RESULTS_VALID and the verdict;
- a command runs on a rising CMD_EXECUTE with READY low, and ends in CMD_DONE or CMD_FAILED;
- any fault (PLC heartbeat stale for the watchdog time, link lost, bad register value, camera or
  engine failure, result not acknowledged in time) latches ERROR and an error code and drops
  READY until the PLC pulses CLEAR_ERROR with the cause gone; that pulse also discards a result
  still waiting for RESULT_ACK (a restarted PLC program's way out). A result posted while an
  error is latched goes out as ERROR, never OK, and the verdict is cleared at every trigger, so
  the PLC can never read a stale OK as the answer for a new part.
"""

from __future__ import annotations

import logging

from aoi.types import LineAnswer, Verdict
from plc.events import (
    RESULT_DISCARDED,
    ActiveRecipe,
    ErrorCleared,
    Event,
    FaultRaised,
    PartAbandoned,
    PartResult,
    RecipeChangeRequested,
    ResultAcknowledged,
    ResultDiscarded,
    TriggerAccepted,
    TriggerMissed,
)
from plc.handshake_state import CommandPhase, Counters, HandshakeState, Phase, Timing
from plc.protocol import (
    CONTROL_BITS_DEFINED,
    U16_MAX,
    U32_MAX,
    CommandCode,
    ControlBit,
    ErrorCode,
    PlcInputs,
)

#: The state's types stay importable from here, next to the rules that use them.
__all__ = ["CommandPhase", "Counters", "Handshake", "Phase", "Timing"]


log = logging.getLogger(__name__)


class Handshake(HandshakeState):
    """The rules that change the station block; see the module docstring."""

    # -- what the PLC wrote -----------------------------------------------------------------

    def step(self, inputs: PlcInputs | None, now_s: float) -> list[Event]:
        """Advance to ``now_s`` with what the PLC block holds (None: it could not be read)."""
        self._beat(now_s)
        if inputs is not None:
            prev = self._last or PlcInputs()
            self._last = inputs
            self._watch_plc_heartbeat(inputs, now_s)
            malformed = self._check_control(inputs)
            if not malformed:
                # An ACK that rises with CLEAR_ERROR acknowledges the result before the clear
                # could discard it: the PLC read that part.
                self._result_ack(inputs)
                self._clear_error_on_edge(prev, inputs)
            self._trigger(inputs, now_s)
            if not malformed:
                self._command(inputs)
        self._timers(now_s)
        events, self._events = self._events, []
        return events

    def _beat(self, now_s: float) -> None:
        period = self.timing.heartbeat_period_s
        if self._next_beat_s is None or now_s >= self._next_beat_s + period:
            self._next_beat_s = now_s  # first step, or the caller fell behind: re-phase
        if now_s >= self._next_beat_s:
            self._heartbeat = (self._heartbeat + 1) & U16_MAX
            self._next_beat_s += period

    def _watch_plc_heartbeat(self, inputs: PlcInputs, now_s: float) -> None:
        if not self.timing.require_plc_heartbeat:
            return
        looked_at, self._watched_at_s = self._watched_at_s, now_s
        gap = now_s - looked_at if looked_at is not None else 0.0
        if gap > self.timing.heartbeat_period_s and self._plc_beat is not None:
            # The station itself did not look for longer than a heartbeat period (a stall of
            # this process: a recipe load, a loaded CPU). The PLC's writes may have waited in
            # the same stall, so the watchdog charges the PLC only for the time it watched.
            self._plc_beat_at_s += gap
            log.warning(
                "the PLC link was not served for %.0f ms (the station was busy); the PLC "
                "heartbeat watchdog does not count that time",
                gap * 1000,
            )
        if self._plc_beat is None:
            self._plc_beat, self._plc_beat_at_s = inputs.plc_heartbeat, now_s
            return
        if inputs.plc_heartbeat != self._plc_beat:
            self._plc_beat, self._plc_beat_at_s = inputs.plc_heartbeat, now_s
            self.plc_alive = True
            self._clear_condition(ErrorCode.PLC_HEARTBEAT_LOST)
        elif self.plc_alive and now_s - self._plc_beat_at_s > self.timing.watchdog_s:
            self.plc_alive = False
            stale_ms = (now_s - self._plc_beat_at_s) * 1000
            self._set_condition(
                ErrorCode.PLC_HEARTBEAT_LOST,
                f"plc_heartbeat stayed at {self._plc_beat} for {stale_ms:.0f} ms; expected a "
                f"change at least every {self.timing.heartbeat_period_s * 1000:.0f} ms "
                f"(watchdog {self.timing.watchdog_s * 1000:.0f} ms)",
            )

    def _check_control(self, inputs: PlcInputs) -> bool:
        bad = inputs.undefined_control_bits
        if bad:
            self._set_condition(
                ErrorCode.BAD_REGISTER_VALUE,
                f"control holds 0x{inputs.control:04X}: bits 0x{bad:04X} are undefined "
                f"(expected only bits of 0x{CONTROL_BITS_DEFINED:04X})",
            )
        else:
            self._clear_condition(ErrorCode.BAD_REGISTER_VALUE)
        return bool(bad)

    def _clear_error_on_edge(self, prev: PlcInputs, inputs: PlcInputs) -> None:
        """A rising CLEAR_ERROR discards a result still waiting for RESULT_ACK, then clears the
        latched error once its cause is gone.

        The discard is the way out for a PLC program that restarted while a result waited: it
        never triggered that part, so it will never acknowledge it, and RESULTS_VALID would
        keep READY low forever. Pulsing CLEAR_ERROR needs no knowledge of the old part.
        """
        if not inputs.has(ControlBit.CLEAR_ERROR) or prev.has(ControlBit.CLEAR_ERROR):
            return
        if self.phase is Phase.RESULT:
            self._discard_result()
        if self.latched is ErrorCode.NONE or self.conditions:
            return  # nothing to clear, or its cause is still there
        code, self.latched, self.latched_message = self.latched, ErrorCode.NONE, ""
        self._events.append(ErrorCleared(code))

    def _result_ack(self, inputs: PlcInputs) -> None:
        if not inputs.has(ControlBit.RESULT_ACK):
            self._ack_armed = True
            return
        if self.phase is Phase.RESULT and self._ack_armed:
            self.phase = Phase.IDLE
            self._ack_armed = False
            self.counters.acked += 1
            self._events.append(ResultAcknowledged(self.inspection_id))

    def _discard_result(self) -> None:
        """Drop the unacknowledged result: RESULTS_VALID low, verdict 0, counted as abandoned."""
        r = self.result
        self.phase = Phase.IDLE
        self.result = None
        self.counters.abandoned_results += 1
        self._events.append(
            ResultDiscarded(self.inspection_id, r.part_sequence if r else self.part_sequence)
        )
        self._events.append(LineAnswer(self.inspection_id, None, RESULT_DISCARDED))

    def _trigger(self, inputs: PlcInputs, now_s: float) -> None:
        high = inputs.has(ControlBit.TRIGGER)
        if not high:
            self.trigger_acked = False
            return
        if self.trigger_acked:
            return  # the same trigger, still held high until the PLC sees TRIGGER_ACK
        self.counters.triggers += 1
        reason = self._not_ready_reason()
        self.trigger_acked = True
        if reason:
            self.missed = True
            self.counters.missed += 1
            self._events.append(TriggerMissed(reason))
            return
        self.inspection_id = self.inspection_id % U32_MAX + 1
        self.part_sequence = inputs.part_sequence
        self.result = None  # never leave the previous part's verdict readable
        self.missed = False
        self.phase = Phase.BUSY
        self.cycle_holds = self.inspection_id
        self._busy_since_s = now_s
        self.counters.accepted += 1
        self._events.append(
            TriggerAccepted(self.inspection_id, inputs.part_sequence, inputs.serial)
        )

    def _command(self, inputs: PlcInputs) -> None:
        execute = inputs.has(ControlBit.CMD_EXECUTE)
        if self.command in (CommandPhase.DONE, CommandPhase.FAILED) and not execute:
            self.command, self.command_error = CommandPhase.NONE, ErrorCode.NONE
            return
        if self.command is not CommandPhase.NONE or not execute or self.phase is Phase.BUSY:
            return  # a command waits for the part in flight
        code, arg = inputs.command_code, inputs.command_arg
        if code == CommandCode.LOAD_RECIPE:
            self._command_code = CommandCode.LOAD_RECIPE
            if not 1 <= arg <= U16_MAX:
                self._fail(
                    ErrorCode.BAD_REGISTER_VALUE,
                    f"command_arg of LOAD_RECIPE must be a product code in 1..65535, got {arg}",
                )
                return
            self.command = CommandPhase.RUNNING
            self._events.append(RecipeChangeRequested(arg))
        elif code == CommandCode.SET_ONLINE:
            self._command_code = CommandCode.SET_ONLINE
            if arg not in (0, 1):
                self._fail(
                    ErrorCode.BAD_REGISTER_VALUE,
                    f"command_arg of SET_ONLINE must be 1 (online) or 0 (offline), got {arg}",
                )
                return
            self.online = bool(arg)
            self.command = CommandPhase.DONE
        else:
            self._command_code = CommandCode.NONE
            known = ", ".join(f"{c.value} {c.name}" for c in CommandCode if c)
            self._fail(
                ErrorCode.UNKNOWN_COMMAND, f"command_code must be one of {known}; got {code}"
            )

    def _fail(self, code: ErrorCode, message: str) -> None:
        self.command, self.command_error = CommandPhase.FAILED, code
        self._events.append(FaultRaised(code, message))

    def _timers(self, now_s: float) -> None:
        t = self.timing
        if self.phase is Phase.BUSY and now_s - self._busy_since_s > t.busy_timeout_s:
            self.counters.busy_timeouts += 1
            self._abandon(
                ErrorCode.INSPECTION_TIMEOUT,
                f"no result for part {self.part_sequence} within {t.busy_timeout_s:.1f} s",
                now_s,
            )
        if (
            self.phase is Phase.RESULT
            and not self._ack_timeout_raised
            and now_s - self._result_since_s > t.result_ack_timeout_s
        ):
            self._ack_timeout_raised = True
            self.counters.ack_timeouts += 1
            self._latch(
                ErrorCode.RESULT_ACK_TIMEOUT,
                f"RESULT_ACK for inspection {self.inspection_id} not set within "
                f"{t.result_ack_timeout_s:.1f} s; the result stays valid until acknowledged",
            )

    # -- what the station reports ----------------------------------------------------------

    def set_station_ready(self, recipe: ActiveRecipe) -> None:
        """The station has warmed up with ``recipe`` and can inspect."""
        self.recipe = recipe
        self.station_ready = True

    def post_result(self, result: PartResult, now_s: float) -> bool:
        """Write ``result`` with RESULTS_VALID; False when it is not for the part in flight
        (another part sequence, or another inspection of it: the PLC may trigger the same part
        sequence again after an abandoned attempt)."""
        if result.inspection_id in (0, self.cycle_holds):
            self.cycle_holds = None  # the cycle is done with its part, answered in time or not
        other = result.inspection_id not in (0, self.inspection_id)
        if self.phase is not Phase.BUSY or result.part_sequence != self.part_sequence or other:
            self.counters.stale_results += 1
            return False
        if result.verdict is Verdict.ERROR:
            self._latch(result.error_code, result.reason or result.error_code.name)
        elif self.latched is not ErrorCode.NONE:
            # A fault came up while the part was inspected: never answer OK under it.
            result = PartResult(result.part_sequence, Verdict.ERROR, error_code=self.latched)
        self._set_result(result, now_s)
        self.counters.results += 1
        return True

    def _set_result(self, result: PartResult, now_s: float) -> None:
        fault = result.error_code.name if result.error_code is not ErrorCode.NONE else ""
        if result.verdict is Verdict.ERROR and not fault:
            fault = ErrorCode.INSPECTION_FAILED.name
        self._events.append(LineAnswer(self.inspection_id, result.verdict, fault))
        self.result = result
        self.phase = Phase.RESULT
        self.toggle = not self.toggle
        self._result_since_s = now_s
        self._ack_timeout_raised = False
        self._ack_armed = self._last is None or not self._last.has(ControlBit.RESULT_ACK)

    def _abandon(self, code: ErrorCode, message: str, now_s: float) -> None:
        """Answer the part in flight ERROR now; its inspection result, if any, is dropped."""
        self._latch(code, message)
        self._set_result(PartResult(self.part_sequence, Verdict.ERROR, error_code=code), now_s)
        self._events.append(PartAbandoned(self.inspection_id, code))

    def command_finished(self, recipe: ActiveRecipe) -> None:
        """The recipe change asked for by :class:`RecipeChangeRequested` is done."""
        if self.command is CommandPhase.RUNNING:
            self.recipe = recipe
            self.command = CommandPhase.DONE

    def command_failed(self, code: ErrorCode, message: str) -> None:
        """The recipe change failed; the previous recipe stays, and so does ERROR until cleared.

        The line asked for a product this station cannot inspect right now: triggers wait for
        the PLC to clear the error (go on with the previous recipe) or to load another one.
        """
        if self.command is CommandPhase.RUNNING:
            self.command, self.command_error = CommandPhase.FAILED, code
            self._latch(code, message)

    def fault(self, code: ErrorCode, message: str) -> None:
        """A one-off fault of the station (latched until CLEAR_ERROR)."""
        self._latch(code, message)

    def link_lost(self, message: str) -> None:
        if self.link_up:
            self.link_up = False
            self._set_condition(ErrorCode.LINK_LOST, message)

    def link_restored(self, now_s: float) -> None:
        self.link_up = True
        self._plc_beat_at_s = now_s  # give the PLC a full watchdog time to beat again
        self._watched_at_s = None  # the outage is no stall of the station's own
        self._clear_condition(ErrorCode.LINK_LOST)

    def stop(self, now_s: float) -> None:
        """The station is shutting down: READY and ONLINE drop; a part in flight gets ERROR."""
        self.stopping = True
        if self.phase is Phase.BUSY:
            self._abandon(
                ErrorCode.STATION_STOPPING,
                f"station stopped before part {self.part_sequence} was inspected",
                now_s,
            )
