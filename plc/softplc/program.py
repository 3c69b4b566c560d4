"""The soft PLC's program: the line's side of the handshake, one scan at a time (pure).

Each :meth:`SoftPlcLogic.scan` reads the station block (None when it could not be read) and
updates the PLC block the program writes (:attr:`SoftPlcLogic.inputs`); it never touches a socket
or a clock, so the program is tested scan by scan with made-up times.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from aoi.types import Verdict
from plc.protocol import (
    U32_MAX,
    CommandCode,
    ControlBit,
    PlcInputs,
    StationOutputs,
    StatusBit,
    error_name,
)
from plc.softplc.report import SimReport


class Step(enum.Enum):
    START = "start"
    LOADING = "loading recipe"
    IDLE = "idle"
    WAIT_TRIGGER_ACK = "wait TRIGGER_ACK"
    WAIT_RESULT = "wait RESULTS_VALID"
    WAIT_VALID_LOW = "wait RESULTS_VALID low"
    DONE = "done"


@dataclass(frozen=True)
class SimTiming:
    heartbeat_period_s: float = 0.25
    watchdog_periods: int = 3
    #: 0: trigger as soon as the station is READY; > 0: a part arrives every period whether
    #: the station is ready or not (a line that does not wait), so lateness shows as missed.
    part_period_s: float = 0.0
    trigger_ack_timeout_s: float = 2.0
    result_timeout_s: float = 5.0
    ack_low_timeout_s: float = 2.0
    command_timeout_s: float = 120.0
    clear_retry_s: float = 0.25


class SoftPlcLogic:
    """The PLC program, one scan at a time; ``inputs`` is what it writes to its block."""

    def __init__(
        self,
        parts: int | None = None,
        timing: SimTiming | None = None,
        *,
        product_code: int | None = None,
        first_sequence: int = 1,
    ) -> None:
        self.parts = parts
        self.timing = timing or SimTiming()
        self.product_code = product_code
        self.report = SimReport()
        self.inputs = PlcInputs(control=int(ControlBit.TRIGGER_ENABLE))
        self.step = Step.START
        self.stop_requested = False
        #: Simulates a PLC program that hangs: the heartbeat stops changing.
        self.heartbeat_frozen = False
        self._sequence = first_sequence
        self._since_s = 0.0
        self._trigger_at_s = 0.0
        self._inspection_id = 0
        self._last_inspection_id: int | None = None
        self._next_beat_s: float | None = None
        self._next_part_s: float | None = None
        self._station_beat: int | None = None
        self._station_beat_at_s = 0.0
        self.station_alive = False
        self._error_seen = False
        self._next_clear_s = 0.0

    @property
    def done(self) -> bool:
        return self.step is Step.DONE

    def _set(self, bit: ControlBit, on: bool) -> None:
        control = self.inputs.control | bit if on else self.inputs.control & ~bit
        self.inputs = replace(self.inputs, control=int(control))

    def _goto(self, step: Step, now_s: float) -> None:
        self.step, self._since_s = step, now_s

    def scan(self, station: StationOutputs | None, now_s: float) -> None:
        """One PLC cycle: read the station block (None: unreachable), update the PLC block."""
        self._beat(now_s)
        if station is None:
            self._scan_offline(now_s)
            return
        self._watch_station(station, now_s)
        waited = now_s - self._since_s
        t = self.timing
        if self.step is Step.START:
            self._start(now_s)
        elif self.step is Step.LOADING:
            self._loading(station, now_s, waited)
        elif self.step is Step.IDLE:
            self._idle(station, now_s)
        elif self.step is Step.WAIT_TRIGGER_ACK:
            if station.has(StatusBit.TRIGGER_ACK):
                self._set(ControlBit.TRIGGER, False)
                if station.has(StatusBit.MISSED_TRIGGER):
                    self.report.missed += 1
                    self.report.note(f"part {self.inputs.part_sequence}: station missed trigger")
                    self._goto(Step.IDLE, now_s)
                else:
                    self._inspection_id = station.inspection_id
                    self._goto(Step.WAIT_RESULT, now_s)
            elif waited > t.trigger_ack_timeout_s:
                self._timeout("TRIGGER_ACK", now_s)
        elif self.step is Step.WAIT_RESULT:
            if station.has(StatusBit.RESULTS_VALID):
                self._result(station, now_s)
            elif waited > t.result_timeout_s:
                self._timeout("RESULTS_VALID", now_s)
        elif self.step is Step.WAIT_VALID_LOW:
            if not station.has(StatusBit.RESULTS_VALID):
                self._set(ControlBit.RESULT_ACK, False)
                self.report.acked += 1
                self._goto(Step.IDLE, now_s)
            elif waited > t.ack_low_timeout_s:
                self._timeout("RESULTS_VALID to drop after RESULT_ACK", now_s)

    def _scan_offline(self, now_s: float) -> None:
        """The station cannot be reached: the waits still time out, as on a real PLC."""
        self.station_alive = False
        waited, t = now_s - self._since_s, self.timing
        limits = {
            Step.WAIT_TRIGGER_ACK: (t.trigger_ack_timeout_s, "TRIGGER_ACK"),
            Step.WAIT_RESULT: (t.result_timeout_s, "RESULTS_VALID"),
            Step.WAIT_VALID_LOW: (t.ack_low_timeout_s, "RESULTS_VALID to drop after RESULT_ACK"),
        }
        if self.step in limits:
            limit, what = limits[self.step]
            if waited > limit:
                self._timeout(what + " (station unreachable)", now_s)
        elif self.step is Step.IDLE and (
            self.stop_requested or (self.parts is not None and self.report.parts >= self.parts)
        ):
            self._goto(Step.DONE, now_s)

    def _beat(self, now_s: float) -> None:
        if self._next_beat_s is None:
            self._next_beat_s = now_s
        if now_s >= self._next_beat_s and not self.heartbeat_frozen:
            self.inputs = replace(
                self.inputs, plc_heartbeat=(self.inputs.plc_heartbeat + 1) & 0xFFFF
            )
            self._next_beat_s = max(self._next_beat_s + self.timing.heartbeat_period_s, now_s)

    def _watch_station(self, station: StationOutputs, now_s: float) -> None:
        if station.station_heartbeat != self._station_beat:
            # The first value read proves nothing; a change does.
            self.station_alive = self._station_beat is not None
            self._station_beat, self._station_beat_at_s = station.station_heartbeat, now_s
            return
        watchdog = self.timing.heartbeat_period_s * self.timing.watchdog_periods
        if self.station_alive and now_s - self._station_beat_at_s > watchdog:
            self.station_alive = False
            self.report.station_heartbeat_lost += 1
            self.report.note(
                f"station_heartbeat stayed at {self._station_beat} for more than "
                f"{watchdog * 1000:.0f} ms"
            )

    def _start(self, now_s: float) -> None:
        if self.product_code is None:
            self._goto(Step.IDLE, now_s)
            return
        self.inputs = replace(
            self.inputs, command_code=int(CommandCode.LOAD_RECIPE), command_arg=self.product_code
        )
        self._set(ControlBit.CMD_EXECUTE, True)
        self._goto(Step.LOADING, now_s)

    def _loading(self, station: StationOutputs, now_s: float, waited: float) -> None:
        code = self.product_code
        if station.has(StatusBit.CMD_DONE):
            self.report.recipe_change = f"product code {code} loaded"
        elif station.has(StatusBit.CMD_FAILED):
            reason = error_name(station.error_code)
            self.report.recipe_change = f"product code {code} failed: {reason}"
            self.report.note(self.report.recipe_change)
        elif waited > self.timing.command_timeout_s:
            self.report.timeouts += 1
            self.report.recipe_change = f"product code {code}: no CMD_DONE within the timeout"
            self.report.note(self.report.recipe_change)
        else:
            return
        self._set(ControlBit.CMD_EXECUTE, False)
        ok = station.has(StatusBit.CMD_DONE)
        self._goto(Step.IDLE if ok else Step.DONE, now_s)

    def _idle(self, station: StationOutputs, now_s: float) -> None:
        if self.stop_requested or (self.parts is not None and self.report.parts >= self.parts):
            self._goto(Step.DONE, now_s)  # the last part is in: no error left to clear for it
            return
        if self._handle_error(station, now_s):
            return
        if station.has(StatusBit.TRIGGER_ACK):
            return  # the station has not finished the previous trigger handshake
        period = self.timing.part_period_s
        if period > 0:
            if self._next_part_s is None:
                if not station.has(StatusBit.READY):
                    return  # the line starts once the station is up
                self._next_part_s = now_s
            if now_s < self._next_part_s:
                return
            self._next_part_s += period
        elif not (station.has(StatusBit.READY) and self.station_alive):
            return
        self._trigger(now_s)

    def _handle_error(self, station: StationOutputs, now_s: float) -> bool:
        """Pulse CLEAR_ERROR while the station shows ERROR; True while it does."""
        if not station.has(StatusBit.ERROR):
            self._error_seen = False
            self._set(ControlBit.CLEAR_ERROR, False)
            return False
        if not self._error_seen:
            self._error_seen = True
            self._next_clear_s = now_s  # a new error: clear at once; retries are paced
            self.report.station_errors[error_name(station.error_code)] += 1
        if self.inputs.has(ControlBit.CLEAR_ERROR):
            self._set(ControlBit.CLEAR_ERROR, False)
        elif now_s >= self._next_clear_s:
            self._set(ControlBit.CLEAR_ERROR, True)
            self._next_clear_s = now_s + self.timing.clear_retry_s
        return True

    def _trigger(self, now_s: float) -> None:
        seq = self._sequence
        self._sequence = self._sequence % U32_MAX + 1
        self.inputs = replace(self.inputs, part_sequence=seq, serial=f"SIM-{seq:08d}")
        self._set(ControlBit.TRIGGER, True)
        self._trigger_at_s = now_s
        self.report.parts += 1
        self._goto(Step.WAIT_TRIGGER_ACK, now_s)

    def _result(self, station: StationOutputs, now_s: float) -> None:
        seq = self.inputs.part_sequence
        problems = []
        if station.part_sequence_echo != seq:
            problems.append(f"part_sequence_echo {station.part_sequence_echo}, expected {seq}")
        if station.inspection_id != self._inspection_id:
            problems.append(
                f"inspection_id {station.inspection_id}, expected {self._inspection_id} "
                f"(given at TRIGGER_ACK)"
            )
        if station.inspection_id == self._last_inspection_id:
            problems.append(f"inspection_id {station.inspection_id} repeats the previous part's")
        if station.verdict not in {v.value for v in Verdict}:
            problems.append(f"verdict {station.verdict}, expected 1..4")
        if problems:
            self.report.mismatched += 1
            self.report.note(f"part {seq}: " + "; ".join(problems))
        else:
            self.report.verdicts[Verdict(station.verdict).name] += 1
        self._last_inspection_id = station.inspection_id
        self.report.part_ms.append((now_s - self._trigger_at_s) * 1000)
        self._set(ControlBit.RESULT_ACK, True)
        self._goto(Step.WAIT_VALID_LOW, now_s)

    def _timeout(self, what: str, now_s: float) -> None:
        self.report.timeouts += 1
        self.report.note(
            f"part {self.inputs.part_sequence}: no {what} within "
            f"{(now_s - self._since_s) * 1000:.0f} ms ({self.step.value})"
        )
        for bit in (ControlBit.TRIGGER, ControlBit.RESULT_ACK):
            self._set(bit, False)
        self._goto(Step.IDLE, now_s)
