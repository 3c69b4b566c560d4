"""The ``aoi`` command line: run the station headless, benchmark it, manage recipes.

Library code logs; this module prints. Machine-readable output (``--json``) is one JSON object on
the last line of stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from aoi import __version__
from aoi.errors import AoiError
from aoi.events import EventBus
from aoi.inference import create_backend
from aoi.pipeline import Pipeline, load_template, run_cycles
from aoi.recipe import (
    DEFAULT_RECIPE,
    LoadedRecipe,
    find_recipe,
    json_schema,
    load_recipe,
)
from aoi.sources.factory import SOURCE_SPECS, create_source
from aoi.station import StationConfig, load_station_config
from aoi.stats import RunStats
from aoi.types import InspectionResult

log = logging.getLogger("aoi")


class _Progress:
    """Prints a status line to stderr at most every ``every_s`` seconds."""

    def __init__(self, total: int | None, every_s: float = 2.0) -> None:
        self.total = total
        self.every_s = every_s
        self.count = 0
        self.counts: dict[str, int] = {}
        self._last = 0.0
        self._t0 = time.monotonic()

    def __call__(self, r: InspectionResult) -> None:
        self.count += 1
        self.counts[r.verdict.name] = self.counts.get(r.verdict.name, 0) + 1
        now = time.monotonic()
        if now - self._last >= self.every_s or self.count == self.total:
            self._last = now
            of = f"/{self.total}" if self.total else ""
            rate = self.count / max(1e-9, now - self._t0)
            counts = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            print(
                f"[aoi] cycle {self.count}{of}  {counts}  last {r.cycle_ms:.1f} ms  "
                f"{rate:.1f} boards/s",
                file=sys.stderr,
                flush=True,
            )


def _open_station(
    args: argparse.Namespace,
) -> tuple[LoadedRecipe, StationConfig]:
    station = load_station_config(args.station)
    loaded = load_recipe(find_recipe(args.recipe))
    return loaded, station


def _summary(
    stats: RunStats, loaded: LoadedRecipe, backend_name: str, model_hash: str, extra: dict[str, Any]
) -> dict[str, Any]:
    out = stats.summary()
    out.update(
        backend=backend_name,
        recipe=loaded.name,
        recipe_hash=loaded.content_hash,
        model_hash=model_hash,
    )
    out.update(extra)
    return out


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    c = summary["cycle_ms"]
    print(f"recipe   {summary['recipe']}  ({summary['recipe_hash'][:12]})")
    print(f"backend  {summary['backend']}  model {summary['model_hash'][:12]}")
    print(
        f"cycles   {summary['cycles']}  "
        + "  ".join(f"{k} {v}" for k, v in summary["verdicts"].items())
    )
    print(
        f"cycle    p50 {c['p50']:.2f} ms  p99 {c['p99']:.2f} ms  max {c['max']:.2f} ms  "
        f"over budget ({summary['budget_ms']:.0f} ms): {summary['over_budget']}"
    )
    for name, p in summary["stages_ms"].items():
        print(f"  {name:<12} p50 {p['p50']:8.2f}  p99 {p['p99']:8.2f}  max {p['max']:8.2f} ms")
    if "board_accuracy" in summary:
        print(f"board accuracy (OK/NG vs truth) {summary['board_accuracy']:.4f}")
    if "errors" in summary:
        print(f"errors   {summary['errors']}")
    if as_json:
        print(json.dumps(summary, sort_keys=True))


def _run(args: argparse.Namespace, *, source_spec: str, cycles: int | None) -> int:
    loaded, station = _open_station(args)
    recipe = loaded.recipe
    g = recipe.geometry
    template = load_template(
        loaded.template_path, g.frame_width_px, g.frame_height_px, str(loaded.path)
    )
    backend_name = args.backend or station.inference.backend
    threads = args.threads if args.threads is not None else station.inference.threads
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        print(f"[aoi] signal {signum}: finishing the current board", file=sys.stderr)
        stop.set()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        backend = create_backend(backend_name, loaded.model_path, g.profile, threads=threads)
        source = create_source(
            source_spec,
            loaded,
            template,
            station,
            seed=args.seed,
            loop=getattr(args, "loop", False),
        )
        with backend, EventBus() as events, source:
            pipeline = Pipeline(loaded, backend, template=template, events=events)
            pipeline.warm_up()
            print(
                f"[aoi] {recipe.name} on {source_spec} with {backend.name}: READY",
                file=sys.stderr,
                flush=True,
            )
            stats = run_cycles(
                pipeline,
                source,
                cycles=cycles,
                stop=stop,
                grab_timeout_s=station.camera.fetch_timeout_s,
                on_result=_Progress(cycles),
            )
            summary = _summary(
                stats, loaded, backend.name, backend.model_hash, {"source": source_spec}
            )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    _print_summary(summary, args.json)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args, source_spec=args.source, cycles=args.cycles)


def cmd_bench(args: argparse.Namespace) -> int:
    return _run(args, source_spec="synthetic", cycles=args.cycles)


def cmd_recipe_validate(args: argparse.Namespace) -> int:
    failed = 0
    for p in args.paths:
        try:
            loaded = load_recipe(p)
        except AoiError as err:
            failed += 1
            print(f"INVALID {err}")
        else:
            print(
                f"ok      {p}: {loaded.name} v{loaded.recipe.version} "
                f"(product code {loaded.recipe.product_code}, hash {loaded.content_hash[:12]})"
            )
    return 1 if failed else 0


def cmd_recipe_schema(args: argparse.Namespace) -> int:
    text = json.dumps(json_schema(), indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def cmd_recipe_template(args: argparse.Namespace) -> int:
    """Write a synthetic product's golden template from its ``[synthetic]`` settings."""
    import cv2

    from aoi.sources.boardgen import golden_board

    loaded = load_recipe(find_recipe(args.recipe), check_files=False)
    r = loaded.recipe
    image = golden_board(
        r.geometry.frame_height_px, r.geometry.frame_width_px, r.synthetic.seed, r.synthetic.look
    )
    out = Path(args.out) if args.out else loaded.template_path
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), image):
        print(f"error: could not write {out}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}, look {r.synthetic.look})")
    return 0


def _add_station_args(p: argparse.ArgumentParser, *, default_cycles: int | None) -> None:
    p.add_argument(
        "--recipe",
        default=DEFAULT_RECIPE,
        help=f"recipe name (shipped) or path to a .toml (default {DEFAULT_RECIPE})",
    )
    p.add_argument(
        "--cycles",
        type=int,
        default=default_cycles,
        help="boards to inspect" + ("" if default_cycles else " (default: until Ctrl-C)"),
    )
    p.add_argument(
        "--backend",
        choices=["auto", "onnxruntime", "onnxruntime-cuda"],
        default=None,
        help="inference backend (default from the station config: auto)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network")
    p.add_argument(
        "--seed", type=int, default=None, help="synthetic source seed (default recipe's)"
    )
    p.add_argument("--station", default=None, help="station config TOML (default: none)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aoi", description="AOI station for bare PCBs")
    parser.add_argument("--version", action="version", version=f"aoi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("run", help="run the station headless")
    _add_station_args(p, default_cycles=None)
    p.add_argument("--source", default="synthetic", help=f"image source: {SOURCE_SPECS}")
    p.add_argument("--loop", action="store_true", help="replay: start again after the last image")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="benchmark the cycle on synthetic boards")
    _add_station_args(p, default_cycles=200)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("recipe", help="validate recipes, export the schema, make templates")
    rsub = p.add_subparsers(dest="recipe_command", required=True)
    q = rsub.add_parser("validate", help="validate recipe files; exit 1 if any is invalid")
    q.add_argument("paths", nargs="+")
    q.set_defaults(func=cmd_recipe_validate)
    q = rsub.add_parser("schema", help="print the recipe JSON schema (for editors)")
    q.add_argument("--out", default=None, help="write to this file instead of stdout")
    q.set_defaults(func=cmd_recipe_schema)
    q = rsub.add_parser("template", help="write a synthetic product's golden template")
    q.add_argument("recipe")
    q.add_argument("--out", default=None, help="file to write (default: the recipe's template)")
    q.set_defaults(func=cmd_recipe_template)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        # The embedded default: shipped recipe, synthetic boards, ONNX Runtime on the CPU.
        args = parser.parse_args(["run", *(argv or [])])
    try:
        return int(args.func(args))
    except AoiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
