"""Starts the plant publishers the station config names (``[mqtt]``, ``[cfx]``, ``[opcua]``).

They run in their own process (aoi/app/plant/host.py, started and supervised by
aoi/app/plant/process.py), each publisher with its own :class:`~aoi.storage.outbox.Outbox` on
the station's journal; a broker that cannot be reached is a ``Plant`` alarm in the alarm
history. The station's state (stopped, running, loading a recipe, error) is watched by one
small thread and handed to the publishers when it changes; alarms come from the alarm log's
listeners. Nothing here runs on the cycle's thread, and no publisher holds the cycle's GIL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aoi.app.recipes import recipe_for_product_code
from aoi.config import StationConfig
from aoi.errors import AoiError
from aoi.recipe import find_recipe

if TYPE_CHECKING:
    from aoi.app.station import Station

log = logging.getLogger(__name__)

#: How often the station's state is looked at (a state lasts far longer than this).
STATE_POLL_S = 0.25


class StateListener(Protocol):
    def publish_state(self, state: dict[str, Any]) -> None: ...

    def publish_alarm(self, alarm: dict[str, Any]) -> None: ...


def station_state(station: Station) -> dict[str, Any]:
    """What the plant is told of the station's state (MQTT ``/state``, OPC UA, CFX)."""
    if station.rig_error is not None:
        state = "error"
    elif station.loading_since is not None:
        state = "loading"
    elif station.running:
        state = "running"
    else:
        state = "stopped"
    active = station.active_recipe
    return {
        "station_id": station.config.station_id,
        "state": state,
        "recipe": active.name if active is not None else None,
        "recipe_hash": active.content_hash if active is not None else None,
        "error": str(station.rig_error) if station.rig_error is not None else "",
    }


class StateWatch:
    """A thread that hands the station's state to the publishers whenever it changes: polled,
    and taken at once when the station says it changed (:meth:`poke`: a run of a few boards
    is over before the next poll)."""

    def __init__(self, station: Station, listeners: list[StateListener]) -> None:
        self.station = station
        self.listeners = listeners
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._taken: deque[dict[str, Any]] = deque(maxlen=64)
        self._thread = threading.Thread(target=self._run, name="aoi-plant-state", daemon=True)

    def __enter__(self) -> StateWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5.0)

    def poke(self) -> None:
        """The station's state changed: take it now (the caller's thread; cheap)."""
        self._taken.append(station_state(self.station))
        self._wake.set()

    def _run(self) -> None:
        last: dict[str, Any] | None = None
        while not self._stop.is_set():
            states = [*(self._taken.popleft() for _ in range(len(self._taken)))]
            for state in [*states, station_state(self.station)]:
                if state != last:
                    last = state
                    stamped = {**state, "ts": time.time()}
                    for listener in self.listeners:
                        listener.publish_state(stamped)
            self._wake.wait(STATE_POLL_S)
            self._wake.clear()

    def alarm(
        self, raised: bool, source: str, key: str, title: str, cause: str, at: datetime
    ) -> None:
        """An :class:`~aoi.storage.alarms.AlarmLog` listener: each raise and clear, as it is."""
        alarm = {
            "station_id": self.station.config.station_id,
            "raised": raised,
            "source": source,
            "key": key,
            "title": title,
            "cause": cause,
            "ts": at.timestamp(),
        }
        for listener in self.listeners:
            listener.publish_alarm(alarm)


def _plant_alarm(station: Station, name: str, text: str | None) -> None:
    """Raise (``text``) or clear (None) the ``Plant`` alarm ``name``: a broker (``MQTT``,
    ``CFX``) not reachable, or the publishers' process stopped (``publishers``)."""
    if station.alarms is None:
        return
    if text is None:
        station.alarms.clear_alarm("Plant", name)
    elif name == "publishers":
        station.alarms.raise_alarm("Plant", name, "plant publishers stopped", text)
    else:
        station.alarms.raise_alarm("Plant", name, f"{name} broker not reachable", text)


def prepare(station: Station, kind: str, external_id: str, who: str) -> str:
    """OPC UA's PrepareRecipe (a recipe name) / PrepareProduct (a product code): activate it
    through the station's recipe path; returns the recipe's name (raises AoiError)."""
    if kind == "product":
        try:
            code = int(external_id)
        except ValueError as err:
            msg = f"product code must be a number, got {external_id!r}"
            raise AoiError(msg) from err
        path = recipe_for_product_code(code, station.recipes_dir)
    else:
        local = station.recipes_dir / f"{external_id}.toml"
        path = local if local.is_file() else find_recipe(external_id)
    return station.activate(path, who).name


def _release_unused(folder: Path, cfg: StationConfig) -> None:
    """Forget the position of a publisher no longer configured: its outbox would keep every
    journal segment from pruning (aoi/storage/outbox.py)."""
    on = {"mqtt": cfg.mqtt.url, "cfx": cfg.cfx.url, "opcua": cfg.opcua.endpoint}
    for name, url in on.items():
        path = folder / f"outbox-{name}.json"
        if not url and path.exists():
            log.info("plant: %s is off; its outbox position %s is removed", name, path)
            path.unlink(missing_ok=True)


def open_plant(stack: ExitStack, station: Station) -> list[StateListener]:
    """Start the configured publishers' process on ``stack`` (stopped before the defect log
    closes); returns the station's listeners (the process, which passes states on)."""
    cfg = station.config
    storage = station.storage
    if storage is not None:
        _release_unused(storage.journal.folder, cfg)
    if storage is None or not (cfg.mqtt.url or cfg.cfx.url or cfg.opcua.endpoint):
        return []
    from aoi.app.plant.host import HostSettings
    from aoi.app.plant.process import PlantProcess

    active = station.active_recipe
    settings = HostSettings(
        config=cfg,
        journal_dir=storage.journal.folder,
        database_url=storage.url,
        data_dir=station.data_dir,
        wait_for_line=station.plc is not None,
        scales=((active.content_hash, active.recipe.geometry.mm_per_px),) if active else (),
    )

    def on_alarm(name: str, text: str | None) -> None:
        _plant_alarm(station, name, text)

    def scale() -> tuple[str, float | None] | None:
        active = station.active_recipe
        return (active.content_hash, active.recipe.geometry.mm_per_px) if active else None

    host = PlantProcess(
        settings, on_alarm=on_alarm, prepare=lambda *a: prepare(station, *a), scale=scale
    )
    stack.enter_context(host)
    watch = stack.enter_context(StateWatch(station, [host]))
    station.state_hooks.append(watch.poke)
    stack.callback(station.state_hooks.remove, watch.poke)
    if station.alarms is not None:
        station.alarms.listeners.append(watch.alarm)
        stack.callback(station.alarms.listeners.remove, watch.alarm)
    log.info("plant: publishing from process %s", host.pid)
    return [host]
