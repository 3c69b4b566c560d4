"""The station's PLC link, chosen from the options and the station config's ``[plc]``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from aoi.config import StationConfig
from plc.events import ActiveRecipe
from plc.link import RecipeChanger
from plc.session import PlcSession, open_plc, tcp_spec

if TYPE_CHECKING:
    from aoi.app.station import StationOptions

__all__ = ["PlcSession", "open_station_plc", "plc_spec_for"]


def plc_spec_for(options: StationOptions, config: StationConfig) -> str:
    """``--plc``; else the PLC the station config's ``[plc]`` names (when allowed); else default.

    ``aoi bench`` never talks to the line's PLC unless told to: a benchmark must not wait for
    (or trigger) a real line.
    """
    if options.plc is not None:
        return options.plc
    if options.plc_from_config and "plc" in config.model_fields_set:
        return tcp_spec(config.plc.host, config.plc.port)
    return options.default_plc


@contextmanager
def open_station_plc(
    spec: str,
    config: StationConfig,
    options: StationOptions,
    *,
    on_recipe_change: RecipeChanger,
    recipe: ActiveRecipe | None = None,
) -> Iterator[PlcSession | None]:
    """The open link (None for ``none``); READY stays low until the runner starts inspecting.

    ``recipe`` (the one the station starts with) is in ``active_recipe`` from the first write.
    """
    source = f"{options.station or 'station config'}: [plc]"
    with open_plc(
        spec,
        config.plc.model_copy(update={"start_online": False}),
        source=source,
        role=options.plc_role,  # type: ignore[arg-type]
        sim_parts=options.sim_parts,
        on_recipe_change=on_recipe_change,
        recipe=recipe,
    ) as session:
        yield session
