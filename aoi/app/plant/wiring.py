"""Opens the plant publishers the station config names (``[mqtt]``, ``[cfx]``, ``[opcua]``).

Each publisher that takes inspections gets its own :class:`~aoi.storage.outbox.Outbox` on the
station's journal; a broker that cannot be reached is a ``Plant`` alarm in the alarm history.
The station's state (stopped, running, loading a recipe, error) is watched by one small thread
and handed to every publisher when it changes; alarms come from the alarm log's listeners.
Nothing here runs on the cycle's thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aoi.app.recipes import recipe_for_product_code
from aoi.config import StationConfig
from aoi.errors import AoiError
from aoi.recipe import find_recipe
from aoi.storage.outbox import Outbox
from aoi.storage.review_feed import ReviewFeed

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
    """A thread that hands the station's state to the publishers whenever it changes."""

    def __init__(self, station: Station, listeners: list[StateListener]) -> None:
        self.station = station
        self.listeners = listeners
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aoi-plant-state", daemon=True)

    def __enter__(self) -> StateWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        last: dict[str, Any] | None = None
        while not self._stop.is_set():
            state = station_state(self.station)
            if state != last:
                last = state
                stamped = {**state, "ts": time.time()}
                for listener in self.listeners:
                    listener.publish_state(stamped)
            self._stop.wait(STATE_POLL_S)

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


def _alarm_hook(station: Station, name: str) -> Callable[[str | None], None]:
    def hook(text: str | None) -> None:
        if station.alarms is None:
            return
        if text is None:
            station.alarms.clear_alarm("Plant", name)
        else:
            station.alarms.raise_alarm("Plant", name, f"{name} broker not reachable", text)

    return hook


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


def recipe_scale(station: Station) -> Callable[[str], float | None]:
    """A recipe's ``[geometry] mm_per_px`` by its content hash: the active recipe's, and those
    of recipes active earlier (an inspection published after a switch); None: not known."""
    known: dict[str, float | None] = {}

    def scale(content_hash: str) -> float | None:
        active = station.active_recipe
        if active is not None:
            known[active.content_hash] = active.recipe.geometry.mm_per_px
        return known.get(content_hash)

    return scale


def _release_unused(folder: Path, cfg: StationConfig) -> None:
    """Forget the position of a publisher no longer configured: its outbox would keep every
    journal segment from pruning (aoi/storage/outbox.py)."""
    on = {"mqtt": cfg.mqtt.url, "cfx": cfg.cfx.url, "opcua": cfg.opcua.endpoint}
    for name, url in on.items():
        path = folder / f"outbox-{name}.json"
        if not url and path.exists():
            log.info("plant: %s is off; its outbox position %s is removed", name, path)
            path.unlink(missing_ok=True)


def event_sinks(
    cfg: StationConfig, scale: Callable[[str], float | None] | None = None
) -> list[tuple[str, Any]]:
    """The configured publishers that carry events (MQTT, then CFX), each with the name its
    alarm carries; a publisher's library is imported only when it is configured."""
    sinks: list[tuple[str, Any]] = []
    if cfg.mqtt.url:
        from aoi.app.plant.mqtt import MqttSink

        sinks.append(("MQTT", MqttSink(cfg.mqtt, cfg.station_id)))
    if cfg.cfx.url:
        from aoi.app.plant.cfx import CfxSink

        sinks.append(("CFX", CfxSink(cfg.cfx, cfg.station_id, scale)))
    return sinks


def open_plant(stack: ExitStack, station: Station) -> list[StateListener]:
    """Open the configured publishers on ``stack`` (closed before the defect log); returns them."""
    cfg = station.config
    storage = station.storage
    if storage is not None:
        _release_unused(storage.journal.folder, cfg)
    if storage is None or not (cfg.mqtt.url or cfg.cfx.url or cfg.opcua.endpoint):
        return []
    listeners: list[StateListener] = []
    outbox = {"station_id": cfg.station_id, "wait_for_line": station.plc is not None}
    # Review decisions go to the publishers that carry events (not OPC UA's result list).
    reviews = ReviewFeed(storage.db, cfg.station_id)
    for label, sink in event_sinks(cfg, recipe_scale(station)):
        on_alarm = _alarm_hook(station, label)
        stack.enter_context(
            Outbox(storage.journal, sink, on_alarm=on_alarm, reviews=reviews, **outbox)
        )
        listeners.append(sink)
    if cfg.opcua.endpoint:
        from aoi.app.plant.opcua import OpcuaServer

        opcua = stack.enter_context(
            OpcuaServer(
                cfg.opcua, cfg.station_id, lambda *a: prepare(station, *a), station.data_dir
            )
        )
        stack.enter_context(Outbox(storage.journal, opcua, **outbox))
        listeners.append(opcua)
    watch = stack.enter_context(StateWatch(station, listeners))
    if station.alarms is not None:
        station.alarms.listeners.append(watch.alarm)
        stack.callback(station.alarms.listeners.remove, watch.alarm)
    log.info("plant: publishing to %s", ", ".join(type(x).__name__ for x in listeners))
    return listeners
