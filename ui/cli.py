"""``aoi gui``: mounted into the ``aoi`` command through the ``aoi.commands`` entry point.

The core's parser loads this hook without importing Qt: PySide6 is imported only when the
command runs, so ``aoi --help`` works on a station without the ``gui`` extra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from aoi.app.arguments import add_station_arguments
from aoi.recipe import DEFAULT_RECIPE
from aoi.sources.factory import SOURCE_SPECS


def add_gui_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``aoi gui`` to the main parser's subcommands (the ``aoi.commands`` entry point)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "gui",
        help="the operator, review and engineer screens (PySide6)",
        description=(
            "Start the station with its screens. With no option it runs the embedded default: "
            f"recipe {DEFAULT_RECIPE}, synthetic boards, ONNX Runtime, a soft PLC and a SQLite "
            "file in the data folder. The station comes up stopped; press START."
        ),
    )
    add_station_arguments(p, default_plc="sim")
    p.add_argument("--source", default="synthetic", help=f"image source: {SOURCE_SPECS}")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="station data folder: database, journal, archive, users (default: AOI_DATA_DIR "
        "or the user's data folder; --screenshot and --bench use a temporary one)",
    )
    p.add_argument(
        "--recipes-dir", type=Path, default=None, help="recipe folder the engineer screen lists"
    )
    p.add_argument("--start", action="store_true", help="start inspecting at once")
    p.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        metavar="DIR",
        help="run --cycles boards offscreen, save a PNG of every screen into DIR and exit",
    )
    p.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="WxH",
        help="window size, e.g. 1366x768 (at least 1024x768; default: the screen's, "
        "--screenshot 1366x768)",
    )
    p.add_argument(
        "--kiosk",
        action="store_true",
        help="full screen without a frame for the line's panel PC; closing needs the Exit "
        "button (stops the station) or an engineer login",
    )
    p.add_argument("--cycles", type=int, default=30, help="boards for --screenshot (default 30)")
    p.add_argument(
        "--bench",
        type=int,
        default=None,
        metavar="N",
        help="measure the GUI's cost: N boards per block, alternating GUI detached and attached "
        "(offscreen), cycle p50/p99 of each; no PLC unless --plc",
    )
    p.add_argument("--blocks", type=int, default=6, help="--bench blocks per side (default 6)")
    p.add_argument("--json", action="store_true", help="--bench: JSON summary on the last line")
    p.set_defaults(func=cmd_gui)
    return p


def _size(text: str) -> tuple[int, int]:
    # Parsed here without Qt (``ui.app`` imports PySide6); the same rule as ui.app.parse_size.
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        msg = f"size {text!r} is not WIDTHxHEIGHT, e.g. 1366x768"
        raise argparse.ArgumentTypeError(msg) from None
    if w < 1024 or h < 768:
        msg = f"size {text} is below the smallest supported, 1024x768"
        raise argparse.ArgumentTypeError(msg)
    return w, h


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        import PySide6  # noqa: F401
    except ImportError:
        print(
            "error: aoi gui needs PySide6; install the gui extra: pip install 'aoi-station[gui]'",
            file=sys.stderr,
        )
        return 2
    from ui.app import run

    return run(args)
