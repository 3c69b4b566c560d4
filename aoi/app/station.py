"""The one place that wires a station: recipe rig, image source, pipeline, storage, PLC, runner.

Qt-free. ``aoi run``, ``aoi bench`` and ``aoi gui`` all open a :class:`Station` from
:class:`StationOptions` and drive it with :meth:`Station.start` / :meth:`Station.stop`;
:class:`~aoi.runner.StationRunner` is the only cycle loop. A front end adds what it shows
(progress lines, a screen) through ``on_result`` callbacks and EventBus ``subscribers``.

Closing order (an :class:`~contextlib.ExitStack`, last opened closes first): the runner stops
after the board in flight, the PLC link drops READY and lets the PLC collect the last result,
the EventBus drains, and the defect log closes last, after everything that writes to it.

A recipe that does not load leaves the station up without a rig (``rig_error``), so a screen
can say why and an engineer can activate another one; ``aoi run`` exits with that error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from types import TracebackType
from typing import Any

from aoi.app.alarms import AlarmLog, open_alarms
from aoi.app.assembly import critical_sinks, run_until_done, shift_counters
from aoi.app.plant.wiring import open_plant
from aoi.app.plc import PlcSession, open_station_plc, plc_spec_for
from aoi.app.recipes import active_recipe, recipe_for_product_code
from aoi.app.rig import Rig, RigError
from aoi.app.service import StationService
from aoi.app.watch import JournalWatch
from aoi.config import StationConfig, load_station_config
from aoi.errors import AoiError
from aoi.events import EventBus, Subscriber
from aoi.heap import peak_rss_mb
from aoi.heap import status as heap_status
from aoi.pipeline import InspectionIds, VerdictSink
from aoi.recipe import DEFAULT_RECIPE, LoadedRecipe, find_recipe, load_recipe
from aoi.runner import RunState, StationRunner
from aoi.stats import RunStats
from aoi.storage import Storage
from aoi.storage.cli import storage_summary
from aoi.storage.db import DB_ERRORS, default_data_dir
from aoi.storage.queries import Window, record_audit
from aoi.storage.shift import shift_so_far
from aoi.types import InspectionResult
from plc.events import ActiveRecipe

log = logging.getLogger(__name__)

__all__ = ["Station", "StationOptions", "critical_sinks", "run_until_done"]

ResultHook = Callable[[InspectionResult], None]


@dataclass(frozen=True)
class StationOptions:
    """What a front end asked for; every field has the embedded default."""

    recipe: str = DEFAULT_RECIPE
    #: Station config TOML (camera, inference, storage, PLC); None: the defaults.
    station: str | None = None
    source: str = "synthetic"
    backend: str | None = None
    threads: int | None = None
    seed: int | None = None
    #: Replay: start again after the last image.
    loop: bool = False
    #: none | sim | tcp://HOST:PORT; None: the station config's [plc] if it has one (and
    #: ``plc_from_config``), else ``default_plc``.
    plc: str | None = None
    default_plc: str = "sim"
    #: ``aoi bench`` never talks to the line's PLC unless told to.
    plc_from_config: bool = True
    plc_role: str | None = None
    #: Parts the built-in soft PLC triggers (None: until stopped).
    sim_parts: int | None = None
    #: Keep the defect log (journal, database, image archive).
    keep_log: bool = True
    #: Overlap boards (aoi.pipelined) when no PLC triggers: throughput over latency.
    pipelined: bool = False
    db_url: str | None = None
    data_dir: Path | None = None
    #: The folder recipes are looked up in by product code (default: the starting recipe's).
    recipes_dir: Path | None = None


class Station:
    """The assembled station; a context manager that closes everything in a safe order."""

    def __init__(
        self,
        options: StationOptions,
        *,
        subscribers: Sequence[tuple[str, Subscriber]] = (),
        on_result: Sequence[ResultHook] = (),
        notify: Callable[[str], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.options = options
        self.config: StationConfig = load_station_config(options.station)
        self.data_dir = options.data_dir or default_data_dir()
        self.loaded_at_start = load_recipe(find_recipe(options.recipe), check_files=False)
        self.recipes_dir = options.recipes_dir or self.loaded_at_start.path.parent
        self.plc_spec = plc_spec_for(options, self.config)
        self._subscribers = list(subscribers)
        self._hooks = list(on_result)
        self._notify = notify or (lambda text: log.info("%s", text))
        self.counters = shift_counters(self.config, self.loaded_at_start, clock)
        self.stats = RunStats(budget_ms=self.loaded_at_start.recipe.cycle_budget_ms)
        #: Numbers inspections no PLC trigger numbered, across recipe changes and restarts.
        self.ids = InspectionIds()
        self.storage: Storage | None = None
        self.events: EventBus | None = None
        self.plc: PlcSession | None = None
        self.runner: StationRunner | None = None
        self.alarms: AlarmLog | None = None  # the alarm history (aoi/app/alarms.py)
        self.rig_error: RigError | None = None
        #: The last rig that inspected (kept after close for the run's summary).
        self.last_rig: Rig | None = None
        #: Called (no arguments, the caller's thread) when the station's state may have changed.
        self.state_hooks: list[Callable[[], None]] = []
        self._sinks: list[VerdictSink] = []
        #: When a recipe change the PLC asked for began (None: none is loading).
        self.loading_since: float | None = None
        self._stack = ExitStack()
        self.service = StationService(self)  # sd_notify: READY, watchdog, STATUS, STOPPING

    # -- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> Station:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.service.stopping()
        self._stack.close()

    def _open(self) -> None:
        stack = self._stack
        if self.options.keep_log:
            # Opened first so it closes last, after the PLC and the event bus have drained.
            self.storage = stack.enter_context(
                Storage(
                    self.config.storage,
                    station_id=self.config.station_id,
                    database_url=self.options.db_url,
                    data_dir=self.data_dir,
                )
            )
            self._seed_counters()
            # Ids go on after the last one this station gave, whatever restarted it.
            self.ids = InspectionIds(self.storage.last_inspection_id())
        events = EventBus()
        if self.storage is not None:
            events.subscribe("storage", self.storage.finish)
        for name, callback in self._subscribers:
            events.subscribe(name, callback)
        self.events = stack.enter_context(events)
        # READY rises when the runner starts inspecting (see StationRunner.start).
        self.plc = stack.enter_context(
            open_station_plc(
                self.plc_spec,
                self.config,
                self.options,
                on_recipe_change=self._plc_recipe_change,
                recipe=active_recipe(self.loaded_at_start),
            )
        )
        if self.plc is not None:
            self.plc.link.continue_ids_after(self.ids.last)
            if self.storage is not None:
                stack.enter_context(JournalWatch(self.storage, self.plc.link))
                self.plc.link.on_answer = self.storage.record_line
        self.alarms = open_alarms(stack, self, self._hooks)
        self.plant = open_plant(stack, self)  # MQTT, IPC-CFX, OPC UA (aoi/app/plant/)
        self._sinks = critical_sinks(self.storage, self.plc.link if self.plc else None)
        stack.callback(self._close_runner)
        try:
            rig = self.open_rig(load_recipe(self.loaded_at_start.path))
        except RigError as err:
            self.rig_error = err
            log.error("station: %s (%s)", err, err.part)  # noqa: TRY400 - said in full
            return
        except AoiError as err:
            self.rig_error = RigError("recipe", str(err))
            log.error("station: %s", err)  # noqa: TRY400 - said in full
            return
        self._install(rig)

    def _close_runner(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.close()
            runner.rig.close()

    def _seed_counters(self) -> None:
        """This shift's boards inspected before the station started, from the database."""
        assert self.storage is not None
        since = self.counters.shift_started.astimezone(UTC)
        window = Window(since=since, station_id=self.config.station_id)
        try:
            so_far = shift_so_far(self.storage.db, window)
        except DB_ERRORS as err:
            log.warning("shift counters start at zero: %s", err)
            return
        self.counters.seed(
            so_far.counts, over_budget=so_far.over_budget, by_recipe=so_far.by_recipe
        )

    # -- recipes ---------------------------------------------------------------------------

    def open_rig(self, loaded: LoadedRecipe) -> Rig:
        """A warmed-up rig for ``loaded`` (raises :class:`RigError`); not yet inspecting."""
        o = self.options
        rig = Rig(
            loaded,
            self.config,
            source_spec=o.source,
            sinks=self._sinks,
            events=self.events,
            backend=o.backend,
            threads=o.threads,
            seed=o.seed,
            loop=o.loop,
            ids=self.ids,
        )
        if self.storage is not None:
            self.storage.note_recipe(loaded.name, loaded.content_hash, loaded.path)
        return rig

    def _install(self, rig: Rig) -> None:
        self.rig_error = None
        self.last_rig = rig
        if self.runner is None:
            self.runner = StationRunner(
                rig,
                self.counters,
                triggers=self.plc.link if self.plc is not None else None,
                set_online=self._set_online,
                on_result=self._on_result,
                grab_timeout_s=self.config.camera.fetch_timeout_s,
                pipelined=self.options.pipelined,
            )
        else:
            self.runner.switch_rig(rig)
        self.counters.budget_ms = rig.loaded.recipe.cycle_budget_ms
        if self.plc is not None:
            self.plc.link.set_station_ready(active_recipe(rig.loaded))

    @property
    def rig(self) -> Rig | None:
        rig = self.runner.rig if self.runner is not None else None
        assert rig is None or isinstance(rig, Rig)
        return rig

    @property
    def active_recipe(self) -> LoadedRecipe | None:
        rig = self.rig
        return rig.loaded if rig is not None else None

    @property
    def running(self) -> bool:
        return self.runner is not None and self.runner.state in (
            RunState.RUNNING,
            RunState.STOPPING,
        )

    def activate(self, path: Path, who: str) -> LoadedRecipe:
        """Inspect with the recipe at ``path`` from now on (the station must be stopped)."""
        if self.running:
            msg = "stop the station before activating another recipe"
            raise AoiError(msg)
        loaded = load_recipe(path)
        old = self.active_recipe
        self._install(self.open_rig(loaded))
        self._state_changed()
        self.audit(who, "recipe.active", _version(old), _version(loaded))
        return loaded

    def _plc_recipe_change(self, product_code: int) -> ActiveRecipe:
        """The PLC's LOAD_RECIPE, on the cycle's thread between parts (READY is low)."""
        self.loading_since = time.monotonic()  # the service's watchdog allows for the load
        self._state_changed()
        try:
            return self._change_recipe(product_code)
        finally:
            self.loading_since = None
            self._state_changed()

    def _change_recipe(self, product_code: int) -> ActiveRecipe:
        loaded = load_recipe(recipe_for_product_code(product_code, self.recipes_dir))
        self._notify(f"PLC: loading {loaded.name} (product code {product_code})")
        old = self.active_recipe
        rig = self.open_rig(loaded)
        self.last_rig = rig
        assert self.runner is not None
        self.runner.switch_rig(rig)
        self.counters.budget_ms = loaded.recipe.cycle_budget_ms
        new = f"{_version(loaded)} (product code {product_code})"
        self.audit_quietly("PLC", "recipe.active", _version(old), new)
        return active_recipe(loaded)

    # -- commands --------------------------------------------------------------------------

    def _set_online(self, online: bool) -> None:
        """ONLINE follows start and stop; ``[plc] start_online = false`` leaves going online
        to the PLC's SET_ONLINE command."""
        if self.plc is None or (online and not self.config.plc.start_online):
            return
        self.plc.link.set_online(online)

    def _on_result(self, result: InspectionResult) -> None:
        self.stats.add(result)
        for hook in self._hooks:
            hook(result)

    def start(self, who: str = "station", cycles: int | None = None) -> bool:
        """Start inspecting (``cycles`` boards, or until stopped); False without a rig."""
        if self.runner is None:
            return False
        started = self.runner.start(cycles)
        if started:
            self.service.started()
            self._state_changed()
            self.audit_quietly(who, "station.state", "stopped", "running")
        return started

    def stop(self, who: str = "station") -> None:
        """Stop after the board in flight; returns at once (:meth:`wait` waits for the end)."""
        if self.runner is not None and self.running:
            self.runner.stop()
            self._state_changed()
            self.audit_quietly(who, "station.state", "running", "stopped")

    def _state_changed(self) -> None:
        for hook in self.state_hooks:
            hook()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the cycle to end (done, stopped or out of images); True if it has."""
        return self.runner is None or self.runner.wait(timeout_s)

    def audit_quietly(self, who: str, what: str, old: str | None, new: str | None) -> None:
        """Audit an operation that must not wait for the database (start, stop, PLC change)."""
        if self.storage is None:
            return
        try:
            self.audit(who, what, old, new)
        except DB_ERRORS as err:
            log.warning("audit of %s (%s -> %s) not written: %s", what, old, new, err)

    def audit(self, who: str, what: str, old: str | None, new: str | None) -> None:
        """Write one change to the audit trail (raises the database's error if it cannot)."""
        if self.storage is None:
            msg = "this station keeps no defect log: nothing to audit into"
            raise AoiError(msg)
        record_audit(self.storage.db, who, what, old, new, station_id=self.config.station_id)

    # -- what a front end reports ----------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The run's JSON summary; final once the station is closed (writer and PLC drained)."""
        out = self.stats.summary()
        rig = self.last_rig
        if rig is not None:
            out.update(
                backend=rig.backend.name,
                recipe=rig.loaded.name,
                recipe_hash=rig.loaded.content_hash,
                model_hash=rig.backend.model_hash,
                registration=rig.pipeline.registrar.steps,
                frames=rig.frame_memory,
            )
        out["source"] = self.options.source
        # What the speed costs in memory: the CPU rig keeps freed blocks (aoi/heap.py).
        out["memory"] = {"peak_rss_mb": peak_rss_mb(), "malloc": heap_status()}
        if self.storage is not None:
            out["storage"] = storage_summary(self.storage)
        if self.plc is not None:
            out["plc"] = self.plc.summary()
        return out


def _version(loaded: LoadedRecipe | None) -> str | None:
    return f"{loaded.name} v{loaded.recipe.version}" if loaded is not None else None
