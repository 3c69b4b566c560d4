"""``aoi build-engine``: build the TensorRT engines of recipes ahead of time.

It lives in the app layer because INT8 recipes need their calibration batches, which are made
from images by the sources and vision layers (:mod:`aoi.app.calibration`). Like the rest of the
CLI: progress goes to stderr, results to stdout, ``--json`` puts one JSON object on the last line
of stdout, and a known failure (an :class:`aoi.errors.AoiError`) ends the command with its
message through ``aoi``'s main.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aoi.app.calibration import recipe_calibration
from aoi.config import load_station_config
from aoi.errors import ModelError
from aoi.inference import engine_settings
from aoi.recipe import find_recipe, load_recipe, recipes_dir


def say(text: str) -> None:
    """One progress line on stderr, marked as ``aoi``'s."""
    print(f"[aoi] {text}", file=sys.stderr, flush=True)


def add_build_engine_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``aoi build-engine --recipe NAME [--recipe NAME ...] [--all] [--force] [--station TOML]``."""
    p = subparsers.add_parser(
        "build-engine",
        help="build the TensorRT engines of recipes ahead of time (cached; see docs/tensorrt.md)",
    )
    p.add_argument(
        "--recipe",
        action="append",
        default=[],
        help="recipe name (shipped) or path to a .toml; repeat for several",
    )
    p.add_argument("--all", action="store_true", help="every recipe in the shipped recipes folder")
    p.add_argument("--force", action="store_true", help="rebuild even where the cache is current")
    p.add_argument("--station", default=None, help="station config TOML ([inference] engine_dir)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    p.set_defaults(func=cmd_build_engine)
    return p


def cmd_build_engine(args: argparse.Namespace) -> int:
    """Build (or find cached) the engine of every recipe named; one line per recipe."""
    from aoi.inference.tensorrt.cuda_mem import gpu_info, set_device
    from aoi.inference.tensorrt.engine import engine_target, ensure_engine, import_tensorrt

    names = list(args.recipe)
    if args.all:
        names += [str(p) for p in sorted(recipes_dir().glob("*.toml"))]
    if not names:
        msg = "build-engine needs --recipe NAME (one or more) or --all"
        raise ModelError(msg)
    settings = engine_settings(load_station_config(args.station).inference)
    recipes = [load_recipe(find_recipe(n)) for n in dict.fromkeys(names)]
    trt = import_tensorrt()
    set_device(settings.device)
    gpu = gpu_info(settings.device)
    say(f"TensorRT {trt.__version__} on {gpu.name} (sm {gpu.compute_capability})")
    say(f"engine cache {settings.engine_dir}")
    done: dict[Path, str] = {}
    rows = []
    for loaded in recipes:
        target = engine_target(
            loaded, trt.__version__, gpu, settings, calibration=recipe_calibration
        )
        for warning in target.warnings:
            say(f"warning: {warning}")
        engine = target.paths.engine
        if engine in done:
            state = f"shared with {done[engine]}"
        else:
            outcome = ensure_engine(
                loaded,
                target,
                settings,
                force=args.force,
                progress=lambda text, name=loaded.name: say(f"{name}: {text}"),
            )
            state = f"built in {outcome.build_seconds:.0f} s" if outcome.built else "cached"
            if outcome.built:
                say(f"{loaded.name}: {outcome.decision.reason}")
            for note in outcome.notes:
                say(f"{loaded.name}: {note}")
            done[engine] = loaded.name
        rows.append(
            {
                "recipe": loaded.name,
                "precision": target.precision.precision,
                "profile": target.profile.as_dict(),
                "engine": str(engine),
                "state": state,
            }
        )
        print(f"{loaded.name:<24} {target.precision.precision:<5} {state:<24} {engine.name}")
    if args.json:
        print(json.dumps({"tensorrt": trt.__version__, "gpu": gpu.name, "engines": rows}))
    return 0
