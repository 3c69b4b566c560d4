"""What the screens show about the station: the four health lights, the alarms, the counters.

Qt-free presentation over :class:`aoi.app.station.Station`, which the GUI opens like every other
front end (``aoi run``, ``aoi bench``); this module only reads snapshots of it (the runner's
last result, the link and storage health, the shift counters) and never touches the cycle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aoi.app.station import Station
from aoi.runner import CounterSnapshot, RunState
from ui.logic.health import (
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
class StationHealth:
    lights: list[Light]
    alarms: list[Alarm]
    counters: CounterSnapshot


def station_health(station: Station) -> StationHealth:
    """The four lights and the alarms now (cheap: snapshots only)."""
    rig, runner, err = station.rig, station.runner, station.rig_error
    last = runner.last_result if runner is not None else None
    source_label = engine_label = ""
    warnings: tuple[str, ...] = ()
    if rig is not None:
        source_label = rig.source.describe()
        warnings = tuple(rig.source.warnings)
        engine_label = f"{rig.backend.name}, model {rig.backend.model_hash[:8]}"
    counters = station.counters.snapshot()
    lights = [
        camera_light(
            source_label,
            warnings=warnings,
            open_error=str(err) if err is not None and err.part == "camera" else "",
            fault=runner.fault if runner is not None else "",
            last=last,
            acquiring=runner is not None and runner.state is RunState.RUNNING,
        ),
        engine_light(
            engine_label,
            on_cpu=rig is not None and rig.backend.name.endswith("-cpu"),
            open_error=str(err) if err is not None and err.part != "camera" else "",
            last=last,
            counters=counters,
        ),
        _plc_light(station),
        database_light(station.storage.status() if station.storage is not None else None),
    ]
    state = runner.state if runner is not None else RunState.STOPPED
    dropped = {k: v["dropped"] for k, v in station.events.stats().items()} if station.events else {}
    return StationHealth(lights, alarms_from(lights, state=state, dropped=dropped), counters)


def _plc_light(station: Station) -> Light:
    if station.plc is None:
        return plc_light(station.plc_spec, None)
    s = station.plc.link.config
    address = f"{s.host}:{s.port}"
    if station.plc_spec == "sim":
        address = "the built-in soft PLC"
    return plc_light(
        station.plc_spec, station.plc.link.health(), address=address, running=station.running
    )
