"""The station behind the GUI, assembled from the core: recipe, engine, source, PLC link, storage.

Qt-free. :class:`Station` is what ``aoi gui`` opens: the same parts ``aoi run`` wires together
(the embedded default is the shipped recipe, synthetic boards, ONNX Runtime on the CPU, a soft PLC
on 127.0.0.1 and a SQLite file in the data folder), with a :class:`~aoi.runner.
StationRunner` that inspects on its own thread and starts and stops on command. The GUI observes
results through the EventBus subscribers it passes in and reads snapshots (counters, link and
storage health); it never touches the cycle's objects.

The station comes up stopped and offline (READY low): an operator starts it. A recipe that does
not load leaves the station up without a rig, so the screen can say why and an engineer can
activate another one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import Path
from types import TracebackType

from aoi.app.rig import Rig, RigError
from aoi.cli import active_recipe, recipe_for_product_code
from aoi.config import StationConfig, load_station_config
from aoi.errors import AoiError
from aoi.events import EventBus, Subscriber
from aoi.pipeline import VerdictSink
from aoi.recipe import DEFAULT_RECIPE, LoadedRecipe, find_recipe, load_recipe
from aoi.runner import CounterSnapshot, RunState, ShiftCounters, StationRunner
from aoi.storage import Storage
from aoi.storage.db import DB_ERRORS, default_data_dir
from aoi.storage.queries import Window, record_audit, yield_table
from aoi.types import Verdict
from plc.events import ActiveRecipe
from plc.session import PlcSession, open_plc, tcp_spec
from plc.settings import LinkSettings
from ui.health import (
    Alarm,
    Light,
    alarms_from,
    camera_light,
    database_light,
    engine_light,
    plc_light,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StationOptions:
    """What ``aoi gui`` was asked for; every field has the embedded default."""

    recipe: str = DEFAULT_RECIPE
    station: str | None = None
    source: str = "synthetic"
    backend: str | None = None
    threads: int | None = None
    seed: int | None = None
    #: none | sim | tcp://HOST:PORT; None: the station config's [plc] if it has one, else sim.
    plc: str | None = None
    plc_role: str | None = None
    db_url: str | None = None
    data_dir: Path | None = None
    #: The folder the engineer's recipe list shows (default: the starting recipe's folder).
    recipes_dir: Path | None = None


def plc_spec(options: StationOptions, config: StationConfig) -> str:
    """``--plc``; else the PLC the station config's ``[plc]`` section names; else ``sim``."""
    if options.plc is not None:
        return options.plc
    if "plc" in config.model_fields_set:
        return tcp_spec(config.plc.host, config.plc.port)
    return "sim"


class Station:
    """The assembled station; a context manager that closes everything in a safe order."""

    def __init__(
        self,
        options: StationOptions,
        *,
        subscribers: Sequence[tuple[str, Subscriber]] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.options = options
        self.config = load_station_config(options.station)
        self.data_dir = options.data_dir or default_data_dir()
        self.loaded_at_start = load_recipe(find_recipe(options.recipe), check_files=False)
        self.recipes_dir = options.recipes_dir or self.loaded_at_start.path.parent
        self.plc_spec = plc_spec(options, self.config)
        self._subscribers = list(subscribers)
        s = self.config.storage
        tz = None
        if s.timezone:
            from zoneinfo import ZoneInfo

            tz = ZoneInfo(s.timezone)
        extra = {"clock": clock} if clock is not None else {}
        self.counters = ShiftCounters(
            self.loaded_at_start.recipe.cycle_budget_ms,
            shift_starts_h=s.shift_starts_h,
            tz=tz,
            **extra,
        )
        self.storage: Storage | None = None
        self.events: EventBus | None = None
        self.plc: PlcSession | None = None
        self.runner: StationRunner | None = None
        self.rig_error: RigError | None = None
        self._sinks: list[VerdictSink] = []
        self._stack = ExitStack()
        self._lock = threading.Lock()

    # -- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> Station:
        try:
            self._open()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _open(self) -> None:
        stack = self._stack
        self.storage = stack.enter_context(
            Storage(
                self.config.storage,
                station_id=self.config.station_id,
                database_url=self.options.db_url,
                data_dir=self.data_dir,
            )
        )
        self._seed_counters()
        events = EventBus()
        events.subscribe("storage", self.storage.finish)
        for name, callback in self._subscribers:
            events.subscribe(name, callback)
        self.events = stack.enter_context(events)
        source = f"{self.options.station or 'station config'}: [plc]"
        settings = LinkSettings.from_dict(self.config.plc.model_dump(), source=source)
        # The station comes up offline: READY rises when an operator starts it.
        settings = replace(settings, start_online=False)
        self.plc = stack.enter_context(
            open_plc(
                self.plc_spec,
                settings,
                role=self.options.plc_role,  # type: ignore[arg-type]
                on_recipe_change=self._plc_recipe_change,
            )
        )
        self._sinks = [self.storage]
        if self.plc is not None:
            self._sinks.append(self.plc.link)
        stack.callback(self._close_runner)
        try:
            loaded = load_recipe(self.loaded_at_start.path)
            rig = self.open_rig(loaded)
        except RigError as err:
            self.rig_error = err
            log.error("station: %s (%s)", err, err.part)  # noqa: TRY400 - said in full
            return
        except AoiError as err:
            self.rig_error = RigError("recipe", str(err))
            log.error("station: %s", err)  # noqa: TRY400 - said in full
            return
        self._install(rig)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _close_runner(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            runner.close()
            runner.rig.close()

    def _seed_counters(self) -> None:
        """This shift's boards inspected before the GUI started, from the database."""
        assert self.storage is not None
        since = self.counters.shift_started.astimezone(UTC)
        window = Window(since=since, station_id=self.config.station_id)
        try:
            rows = yield_table(self.storage.db, window, "station")
        except DB_ERRORS as err:
            log.warning("shift counters start at zero: %s", err)
            return
        for row in rows:
            self.counters.seed(
                {
                    Verdict.OK: row.ok,
                    Verdict.NG: row.ng,
                    Verdict.REVIEW: row.review,
                    Verdict.ERROR: row.error,
                }
            )

    # -- recipes ---------------------------------------------------------------------------

    def open_rig(self, loaded: LoadedRecipe) -> Rig:
        """A warmed-up rig for ``loaded`` (raises :class:`RigError`); not yet inspecting."""
        assert self.events is not None
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
        )
        if self.storage is not None:
            self.storage.note_recipe(loaded.name, loaded.content_hash, loaded.path)
        return rig

    def _install(self, rig: Rig) -> None:
        self.rig_error = None
        if self.runner is None:
            self.runner = StationRunner(
                rig,
                self.counters,
                triggers=self.plc.link if self.plc is not None else None,
                set_online=self._set_online,
                grab_timeout_s=self.config.camera.fetch_timeout_s,
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
        return self.runner is not None and self.runner.state.value in ("running", "stopping")

    def activate(self, path: Path, who: str) -> LoadedRecipe:
        """Inspect with the recipe at ``path`` from now on (the station must be stopped)."""
        if self.running:
            msg = "stop the station before activating another recipe"
            raise AoiError(msg)
        loaded = load_recipe(path)
        old = self.active_recipe
        rig = self.open_rig(loaded)
        self._install(rig)
        self.audit(
            who,
            "recipe.active",
            f"{old.name} v{old.recipe.version}" if old else None,
            f"{loaded.name} v{loaded.recipe.version}",
        )
        return loaded

    def _plc_recipe_change(self, product_code: int) -> ActiveRecipe:
        """The PLC's LOAD_RECIPE, on the cycle's thread between parts."""
        loaded = load_recipe(recipe_for_product_code(product_code, self.recipes_dir))
        old = self.active_recipe
        rig = self.open_rig(loaded)
        assert self.runner is not None
        self.runner.switch_rig(rig)
        self.counters.budget_ms = loaded.recipe.cycle_budget_ms
        self.audit_quietly(
            "PLC",
            "recipe.active",
            f"{old.name} v{old.recipe.version}" if old else None,
            f"{loaded.name} v{loaded.recipe.version} (product code {product_code})",
        )
        return active_recipe(rig.loaded)

    # -- commands --------------------------------------------------------------------------

    def _set_online(self, online: bool) -> None:
        if self.plc is not None:
            self.plc.link.set_online(online)

    def start(self, who: str, cycles: int | None = None) -> bool:
        if self.runner is None:
            return False
        started = self.runner.start(cycles)
        if started:
            self.audit_quietly(who, "station.state", "stopped", "running")
        return started

    def stop(self, who: str) -> None:
        if self.runner is not None and self.running:
            self.runner.stop()
            self.audit_quietly(who, "station.state", "running", "stopped")

    def audit_quietly(self, who: str, what: str, old: str | None, new: str | None) -> None:
        """Audit an operation that must not wait for the database (start, stop, PLC change)."""
        try:
            self.audit(who, what, old, new)
        except DB_ERRORS as err:
            log.warning("audit of %s (%s -> %s) not written: %s", what, old, new, err)

    def audit(self, who: str, what: str, old: str | None, new: str | None) -> None:
        """Write one change to the audit trail (raises the database's error if it cannot)."""
        assert self.storage is not None
        record_audit(self.storage.db, who, what, old, new, station_id=self.config.station_id)

    # -- what the screen shows -------------------------------------------------------------

    def health(self) -> StationHealth:
        """The four lights and the alarms now (cheap: snapshots only)."""
        rig, runner, err = self.rig, self.runner, self.rig_error
        last = runner.last_result if runner is not None else None
        source_label = engine_label = ""
        warnings: tuple[str, ...] = ()
        if rig is not None:
            source_label = rig.source.describe()
            warnings = tuple(getattr(rig.source, "warnings", ()))
            engine_label = f"{rig.backend.name}, model {rig.backend.model_hash[:8]}"
        counters = self.counters.snapshot()
        lights = [
            camera_light(
                source_label,
                warnings=warnings,
                open_error=str(err) if err is not None and err.part == "camera" else "",
                fault=runner.fault if runner is not None else "",
                last=last,
            ),
            engine_light(
                engine_label,
                on_cpu=rig is not None and rig.backend.name.endswith("-cpu"),
                open_error=str(err) if err is not None and err.part != "camera" else "",
                last=last,
                counters=counters,
            ),
            self._plc_light(),
            database_light(self.storage.status() if self.storage is not None else None),
        ]
        state = runner.state if runner is not None else RunState.STOPPED
        dropped = {k: v["dropped"] for k, v in self.events.stats().items()} if self.events else {}
        return StationHealth(lights, alarms_from(lights, state=state, dropped=dropped), counters)

    def _plc_light(self) -> Light:
        if self.plc is None:
            return plc_light(self.plc_spec, None)
        s = self.plc.link.settings
        address = f"{s.host}:{s.port}"
        if self.plc_spec == "sim":
            address = "the built-in soft PLC"
        return plc_light(
            self.plc_spec, self.plc.link.health(), address=address, running=self.running
        )


@dataclass(frozen=True)
class StationHealth:
    lights: list[Light]
    alarms: list[Alarm]
    counters: CounterSnapshot
