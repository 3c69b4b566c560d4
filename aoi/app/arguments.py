"""The station's command-line arguments, shared by ``aoi run``, ``aoi bench`` and ``aoi gui``.

One set of flags and one mapping to :class:`~aoi.app.station.StationOptions`, so the three
front ends cannot drift apart (they did: the backend list was copied into each).
"""

from __future__ import annotations

import argparse
from typing import Any

from aoi.app.station import StationOptions
from aoi.recipe import DEFAULT_RECIPE
from aoi.storage.cli import add_db_argument
from aoi.types import BackendName
from plc.session import SPEC_HELP


def add_station_arguments(p: argparse.ArgumentParser, *, default_plc: str) -> None:
    """``--recipe --backend --threads --seed --station --plc --plc-role --db``."""
    p.add_argument(
        "--recipe",
        default=DEFAULT_RECIPE,
        help=f"recipe name (shipped) or path to a .toml (default {DEFAULT_RECIPE})",
    )
    p.add_argument(
        "--backend",
        choices=BackendName.choices(),
        default=None,
        help="inference backend (default from the station config: auto)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network")
    p.add_argument(
        "--seed", type=int, default=None, help="synthetic source seed (default recipe's)"
    )
    p.add_argument("--station", default=None, help="station config TOML (default: none)")
    where = "" if default_plc == "none" else "the PLC of the station config's [plc], else "
    p.add_argument(
        "--plc",
        default=None,
        help=f"PLC link: {SPEC_HELP}; sim starts a soft PLC in-process on 127.0.0.1 "
        f"(default {where}{default_plc})",
    )
    p.add_argument(
        "--plc-role",
        choices=["server", "client"],
        default=None,
        help="station as Modbus server polled by the PLC, or as client writing into the PLC "
        "(default from the station config: server)",
    )
    add_db_argument(p)


def station_options(args: argparse.Namespace, **override: Any) -> StationOptions:
    """The options the parsed station arguments ask for; ``override`` sets the rest."""
    values: dict[str, Any] = {
        "recipe": args.recipe,
        "station": args.station,
        "source": getattr(args, "source", "synthetic"),
        "backend": args.backend,
        "threads": args.threads,
        "seed": args.seed,
        "loop": getattr(args, "loop", False),
        "plc": args.plc,
        "plc_role": args.plc_role,
        "db_url": args.db,
        "data_dir": getattr(args, "data_dir", None),
        "recipes_dir": getattr(args, "recipes_dir", None),
    }
    return StationOptions(**{**values, **override})
