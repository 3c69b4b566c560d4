"""The station's end of the PLC link: the handshake, driven by a thread, over a register peer.

:class:`StationLink` is what the cycle sees. It is the cycle's trigger source
(``wait_trigger``) and a critical-path verdict sink (``publish``). A background thread reads the
PLC block every poll period (or as soon as the PLC writes, when the station serves), steps the
:class:`~plc.handshake.Handshake`, and writes the station block whenever it changed. For the
client role it also supervises the connection: a failed request marks the link DOWN, latches
LINK_LOST and reconnects with backoff; the first write after reconnecting carries the fault, so
the PLC never reads an OK that the station could not stand behind. A TCP connect alone proves
nothing (a PLC may accept and drop at once): the backoff resets, and the link counts as up again,
only after the first good exchange. Every change of the link's state is one line in the log at
WARNING, so the operator sees it at the default level.

A recipe change asked for by the PLC runs on the thread that calls ``wait_trigger`` (the cycle's
thread, between parts, with READY low), through the ``on_recipe_change`` callback.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from aoi.config import PlcConfig
from aoi.errors import AoiError
from aoi.types import InspectionResult, LineAnswer, Trigger
from plc.config import handshake_timing, register_map
from plc.errors import PlcLinkError, UnknownProductCode
from plc.events import (
    ActiveRecipe,
    Event,
    LinkStateChanged,
    PartResult,
    RecipeChangeRequested,
    TriggerAccepted,
    log_events,
)
from plc.handshake import Handshake, Phase
from plc.peer import Backoff, LinkState, RegisterPeer
from plc.protocol import U32_MAX, ErrorCode, StationOutputs
from plc.registers import decode_plc, encode_station

log = logging.getLogger(__name__)

#: ``on_recipe_change(product_code)``: load the recipe and its engine, return what is active;
#: raise :class:`UnknownProductCode` for a code no recipe carries, another AoiError on failure.
RecipeChanger = Callable[[int], ActiveRecipe]


@dataclass(frozen=True)
class LinkHealth:
    """A snapshot for the GUI and the summary."""

    state: LinkState
    ready: bool
    error_code: ErrorCode
    error_message: str
    plc_alive: bool
    active_recipe: int
    triggers: int
    accepted: int
    missed: int
    acked: int
    stale_results: int
    timeouts: int


class StationLink:
    """Triggers from the PLC to the cycle and verdicts back; see the module docstring.

    ``config`` is the station config's ``[plc]`` section as the link runs it (overrides
    applied); ``source`` names that section in the message of a bad register map.
    """

    def __init__(
        self,
        peer: RegisterPeer,
        config: PlcConfig,
        *,
        source: str = "[plc]",
        on_recipe_change: RecipeChanger | None = None,
        recipe: ActiveRecipe | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peer = peer
        self.config = config
        self.layout = register_map(config, source)
        self.on_recipe_change = on_recipe_change
        self.handshake = Handshake(
            handshake_timing(config), online=config.start_online, link_up=peer.connected
        )
        # Known before the thread starts, so the first write after connecting already shows the
        # recipe the station runs (or is warming up): never active_recipe 0 for a known recipe.
        self.handshake.recipe = recipe
        self.write_ms: list[float] = []
        #: Told what the line got for each inspection (the defect log stores it beside the
        #: inspection's verdict); called on the link's thread, so it must not block.
        self.on_answer: Callable[[LineAnswer], None] | None = None
        #: Told every event of the handshake and every change of the link's state (the alarm
        #: history); called on the link's thread, so it must not block.
        self.on_event: Callable[[Event], None] | None = None
        #: The verdicts the line received, by name (RESULT_DISCARDED: withdrawn uncollected).
        self.line_verdicts: dict[str, int] = {}
        self.state = LinkState.CONNECTING
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue[Trigger | RecipeChangeRequested] = queue.Queue()
        self._written: StationOutputs | None = None
        self._backoff = Backoff(config.reconnect_min_ms / 1000, config.reconnect_max_ms / 1000)
        self._next_attempt_s = 0.0
        #: Connected, but no good exchange yet since (re)connecting.
        self._unproven = False

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> StationLink:
        self._thread = threading.Thread(target=self._serve, name="plc-link", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._set_state(LinkState.CLOSED)

    def shutdown(self) -> None:
        """Drop READY and ONLINE and answer a part in flight ERROR; keep serving acks."""
        with self._lock:
            if not self.handshake.stopping:
                self.handshake.stop(self._clock())
                self._flush()
        self._dispatch(self.handshake.drain_events())

    def wait_result_acked(self, timeout_s: float) -> bool:
        """Wait until no result waits for RESULT_ACK (the PLC collected the last part)."""
        return self._wait(lambda: self.handshake.phase is not Phase.RESULT, timeout_s)

    def wait_result_collected(self, timeout_s: float) -> bool:
        """Wait until the PLC acknowledged the last result and let go of RESULT_ACK, so it has
        seen RESULTS_VALID drop: its handshake for the part is complete (before a shutdown)."""
        return self._wait(lambda: self.handshake.result_collected, timeout_s)

    def _wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if done():
                    return True
            if time.monotonic() >= deadline:
                return False
            self._stop.wait(0.01)

    # -- the cycle's side -------------------------------------------------------------------

    def set_station_fault(self, code: ErrorCode, message: str | None) -> None:
        """Hold (``message``) or clear (None) a station-side fault such as STORAGE_UNAVAILABLE:
        while held, READY stays low and ERROR shows ``code``; CLEAR_ERROR works once it clears."""
        with self._lock:
            held = code in self.handshake.conditions
            if message is not None and not held:
                self.handshake.hold_fault(code, message)
            elif message is None and held:
                self.handshake.release_fault(code)
                log.warning("station fault over: %s; CLEAR_ERROR clears the latch", code.name)
            else:
                return
            self._flush()
        self._dispatch(self.handshake.drain_events())

    def continue_ids_after(self, last: int) -> None:
        """Number the next triggered part ``last + 1``: a restarted station goes on after the
        last inspection id it gave, so ids stay unique for the life of its database."""
        with self._lock:
            self.handshake.inspection_id = last % U32_MAX

    def set_online(self, online: bool) -> None:
        """The station's own online/offline switch (an operator's start and stop), as the PLC's
        SET_ONLINE command would set it: ONLINE and READY follow in the same write."""
        with self._lock:
            self.handshake.online = online
            self._flush()

    def set_station_ready(self, recipe: ActiveRecipe) -> None:
        """The station has warmed up: READY may rise (when the PLC side allows it)."""
        with self._lock:
            self.handshake.set_station_ready(recipe)
            self._flush()

    def wait_trigger(self, timeout_s: float) -> Trigger | None:
        """The next accepted trigger, or None (also right after running a recipe change).

        Returning after a recipe change lets the caller switch to the new recipe's pipeline
        before it takes the next trigger.
        """
        try:
            item = self._queue.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return None
        if isinstance(item, Trigger):
            return item
        self._change_recipe(item.product_code)
        return None

    def publish(self, result: InspectionResult) -> None:
        """Write the part's result block and RESULTS_VALID in one write; never raises.

        The time of that write (a memory update when the station serves, a Modbus write
        request and its response when it is the client) goes into ``write_ms``.
        """
        part = PartResult.from_inspection(result)
        with self._lock:
            if not self.handshake.post_result(part, self._clock()):
                log.warning(
                    "result of inspection %d (part %d) is for no part in flight; not sent",
                    result.inspection_id,
                    result.part_sequence,
                )
                return
            t0 = time.perf_counter_ns()
            if self._flush():
                self.write_ms.append((time.perf_counter_ns() - t0) / 1e6)

    def health(self) -> LinkHealth:
        with self._lock:
            h = self.handshake
            c = h.counters
            return LinkHealth(
                state=self.state,
                ready=h.ready,
                error_code=h.error_code,
                error_message=h.latched_message,
                plc_alive=h.plc_alive,
                active_recipe=h.recipe.product_code if h.recipe else 0,
                triggers=c.triggers,
                accepted=c.accepted,
                missed=c.missed,
                acked=c.acked,
                stale_results=c.stale_results,
                timeouts=c.ack_timeouts + c.busy_timeouts,
            )

    def _change_recipe(self, product_code: int) -> None:
        log.info("PLC asks for the recipe of product code %d", product_code)
        failure: tuple[ErrorCode, str] | None = None
        recipe: ActiveRecipe | None = None
        if self.on_recipe_change is None:
            failure = (ErrorCode.COMMAND_NOT_SUPPORTED, "this station cannot change recipes")
        else:
            try:
                recipe = self.on_recipe_change(product_code)
            except UnknownProductCode as err:
                failure = (ErrorCode.UNKNOWN_PRODUCT_CODE, str(err))
            except AoiError as err:
                failure = (ErrorCode.RECIPE_LOAD_FAILED, str(err))
        with self._lock:
            if recipe is not None:
                self.handshake.command_finished(recipe)
                log.info("recipe %s (product code %d) active", recipe.name, recipe.product_code)
            elif failure is not None:
                self.handshake.command_failed(*failure)
            self._flush()
        self._dispatch(self.handshake.drain_events())

    # -- the link thread --------------------------------------------------------------------

    def _serve(self) -> None:
        poll_s = self.config.poll_period_ms / 1000
        while not self._stop.is_set():
            if not self.peer.connected and not self._reconnect():
                continue
            try:
                words = self.peer.read(self.layout.plc_block)
            except PlcLinkError as err:
                self._link_down(str(err))
                continue
            if self._unproven:
                self._proven()
            self._set_state(LinkState.UP if self.peer.has_partner else LinkState.LISTENING)
            inputs = decode_plc(self.layout, words)
            with self._lock:
                events = self.handshake.step(inputs, self._clock())
                self._flush()
            self._dispatch(events)
            self.peer.wait(poll_s)

    def _reconnect(self) -> bool:
        now = self._clock()
        if now < self._next_attempt_s:
            with self._lock:
                self._dispatch(self.handshake.step(None, now))  # timers run while down
            self._stop.wait(min(self._next_attempt_s - now, self.config.poll_period_ms / 1000))
            return False
        try:
            self.peer.connect()
        except PlcLinkError as err:
            self._link_down(str(err))
            return False
        self._unproven = True  # the backoff resets on the first good exchange, not here
        with self._lock:
            self._written = None  # the PLC's copy is unknown: write the whole block
        return True

    def _proven(self) -> None:
        """The first read since (re)connecting answered: the link is really back."""
        self._unproven = False
        self._backoff.succeeded()
        with self._lock:
            self.handshake.link_restored(self._clock())

    def _link_down(self, reason: str) -> None:
        self.peer.disconnect()
        delay = self._backoff.failed()
        self._next_attempt_s = self._clock() + delay
        self._unproven = False
        with self._lock:
            self.handshake.link_lost(reason)
            self._written = None
        log.debug("PLC link attempt %d failed: %s", self._backoff.attempts, reason)
        self._set_state(
            LinkState.DOWN,
            f"{reason}; retrying in {delay:.1f} s, backing off to {self._backoff.max_s:.1f} s",
        )
        self._dispatch(self.handshake.drain_events())

    def _flush(self) -> bool:
        """Write the station block if it changed (caller holds the lock); False if it failed."""
        out = self.handshake.outputs
        if out == self._written:
            return True
        if not self.peer.connected:
            return False
        try:
            self.peer.write(self.layout.station_block.start, encode_station(self.layout, out))
        except PlcLinkError as err:
            log.warning("writing the station block failed: %s", err)
            self._written = None
            self.handshake.link_lost(str(err))
            return False
        self._written = out
        return True

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, TriggerAccepted):
                self._queue.put(
                    Trigger(
                        event.part_sequence,
                        event.serial,
                        received_ns=time.perf_counter_ns(),
                        inspection_id=event.inspection_id,
                    )
                )
            elif isinstance(event, RecipeChangeRequested):
                self._queue.put(event)
            elif isinstance(event, LineAnswer):
                key = event.verdict.name if event.verdict is not None else event.fault
                self.line_verdicts[key] = self.line_verdicts.get(key, 0) + 1
                if self.on_answer is not None:
                    self.on_answer(event)
            if self.on_event is not None:
                self.on_event(event)
        log_events(events)

    def _set_state(self, state: LinkState, detail: str = "") -> None:
        """Record a change of state in one WARNING line (a loss says why, a return says so)."""
        if state is self.state:
            return
        old, self.state = self.state, state
        lost = old is LinkState.UP
        what = {
            LinkState.UP: "up again" if old in (LinkState.DOWN, LinkState.LISTENING) else "up",
            LinkState.DOWN: "lost" if lost else "down",
            LinkState.LISTENING: "lost: the PLC disconnected" if lost else "listening",
            LinkState.CLOSED: "closed",
            LinkState.CONNECTING: "connecting",
        }[state]
        peer = f"{self.config.host}:{self.config.port}"
        tail = f": {detail}" if detail else ""
        # Closing is the station's own doing, not news from the line.
        level = logging.INFO if state is LinkState.CLOSED else logging.WARNING
        log.log(level, "PLC link %s (%s -> %s, %s)%s", what, old.value, state.value, peer, tail)
        if self.on_event is not None:
            self.on_event(LinkStateChanged(old.value, state.value, detail))
