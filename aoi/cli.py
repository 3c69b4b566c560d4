"""The ``aoi`` command line: parsers and printing; the station itself is wired in :mod:`aoi.app`.

Library code logs; this module prints. Machine-readable output (``--json``) is one JSON object on
the last line of stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from aoi import __version__
from aoi.app.arguments import add_station_arguments, station_options
from aoi.app.doctor import add_doctor_parser
from aoi.app.engines import add_build_engine_parser, say
from aoi.app.evaluation import add_eval_parser
from aoi.app.plcsim import add_plc_sim_parser
from aoi.app.recipe_cli import add_recipe_parser
from aoi.app.signals import stop_on_signals
from aoi.app.station import Station, StationOptions, run_until_done
from aoi.errors import AoiError
from aoi.heap import one_malloc_arena
from aoi.sources.factory import SOURCE_SPECS
from aoi.storage.cli import add_prune_parser, add_report_parser
from aoi.storage.cli import format_storage_summary as _storage_lines
from aoi.types import InspectionResult

log = logging.getLogger("aoi")


class _Progress:
    """Prints a status line to stderr at most every ``every_s`` seconds (on the cycle's thread)."""

    def __init__(self, total: int | None, every_s: float = 2.0) -> None:
        self.total, self.every_s = total, every_s
        self.count, self.counts = 0, dict[str, int]()
        self._last, self._t0 = 0.0, time.monotonic()

    def __call__(self, r: InspectionResult) -> None:
        self.count += 1
        self.counts[r.verdict.name] = self.counts.get(r.verdict.name, 0) + 1
        now = time.monotonic()
        if now - self._last >= self.every_s or self.count == self.total:
            self._last = now
            of = f"/{self.total}" if self.total else ""
            rate = self.count / max(1e-9, now - self._t0)
            counts = " ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            say(f"cycle {self.count}{of}  {counts}  last {r.cycle_ms:.1f} ms  {rate:.1f} boards/s")


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    c = summary["cycle_ms"]
    print(f"recipe   {summary['recipe']}  ({summary['recipe_hash'][:12]})")
    print(f"backend  {summary['backend']}  model {summary['model_hash'][:12]}")
    verdicts = "  ".join(f"{k} {v}" for k, v in summary["verdicts"].items())
    print(f"cycles   {summary['cycles']}  {verdicts}")
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
    if "memory" in summary:
        m = summary["memory"]
        frames = f"; frames: {summary['frames']}" if "frames" in summary else ""
        print(f"memory   peak RSS {m['peak_rss_mb']:.0f} MiB; malloc: {m['malloc']}{frames}")
    if "plc" in summary:
        q, w = summary["plc"], summary["plc"]["write_ms"]
        print(
            f"plc      parts {q['parts']}  acked {q['acked']}  missed {q['missed']}  "
            f"mismatched {q['mismatched']}  timeouts {q['timeouts']}  "
            f"write p50 {w['p50']:.3f}  p99 {w['p99']:.3f}  max {w['max']:.3f} ms"
        )
        line = "  ".join(f"{k} {v}" for k, v in sorted(q["line_verdicts"].items()))
        print(f"line     received {line or 'nothing'}")
    if "storage" in summary:
        print(_storage_lines(summary["storage"]))
    if as_json:
        print(json.dumps(summary, sort_keys=True))


def options_for(args: argparse.Namespace) -> StationOptions:
    """What ``aoi run`` / ``aoi bench`` ask the station for.

    A benchmark inspects synthetic boards, keeps no log unless told where (``--db``) and never
    drives the line's PLC unless told to (``--plc``).
    """
    if args.command == "bench":
        return station_options(
            args,
            source=f"synthetic?prerender={args.prerender}" if args.prerender else "synthetic",
            default_plc="none",
            plc_from_config=False,
            keep_log=bool(args.db),
            sim_parts=args.cycles,
            pipelined=args.pipelined,
        )
    return station_options(args, sim_parts=args.cycles)


def _run(args: argparse.Namespace, options: StationOptions) -> int:
    stop = threading.Event()
    hooks = [_Progress(args.cycles)]
    with (
        stop_on_signals(stop, "aoi", "finishing the current board"),
        Station(options, on_result=hooks, notify=say) as station,
    ):
        if station.rig_error is not None:
            raise station.rig_error
        rig = station.rig
        assert rig is not None
        say(
            f"{rig.loaded.name} on {options.source} with {rig.backend.name}, "
            f"PLC {station.plc_spec}: READY"
        )
        station.start("aoi " + args.command, cycles=args.cycles)
        run_until_done(station, stop)
        fault = station.runner.fault if station.runner is not None else ""
    if station.plc is not None and station.plc.sim is not None:
        t = station.plc.sim.report.details()
        ms = t["trigger_to_result_ms"]
        say(
            f"soft PLC: trigger to result p50 {ms['p50']:.1f}  p99 {ms['p99']:.1f}  "
            f"max {ms['max']:.1f} ms; station errors cleared {t['station_errors'] or 0}"
        )
    _print_summary(station.summary(), args.json)
    if fault:
        print(f"error: the station stopped: {fault}", file=sys.stderr)
        return 2
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args, options_for(args))


def _add_run_args(p: argparse.ArgumentParser, *, default_cycles: int | None, plc: str) -> None:
    add_station_arguments(p, default_plc=plc)
    until = "" if default_cycles else " (default: until Ctrl-C)"
    p.add_argument("--cycles", type=int, default=default_cycles, help="boards to inspect" + until)
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aoi", description="AOI station for bare PCBs")
    parser.add_argument("--version", action="version", version=f"aoi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("run", help="run the station headless")
    _add_run_args(p, default_cycles=None, plc="sim")
    p.add_argument("--source", default="synthetic", help=f"image source: {SOURCE_SPECS}")
    p.add_argument("--loop", action="store_true", help="replay: start again after the last image")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="benchmark the cycle on synthetic boards")
    _add_run_args(p, default_cycles=200, plc="none")
    p.add_argument("--pipelined", action="store_true", help="overlap boards (no PLC only)")
    p.add_argument("--prerender", type=int, default=0, help="render K boards once, replay them")
    p.set_defaults(func=cmd_run)

    for add in (add_plc_sim_parser, add_recipe_parser, add_eval_parser, add_report_parser):
        add(sub)
    add_prune_parser(sub)
    add_build_engine_parser(sub)
    add_doctor_parser(sub)
    # Commands of other packages (``aoi gui`` from ui/) mount themselves through entry points,
    # so the core never imports them.
    for hook in entry_points(group="aoi.commands"):
        try:
            add_parser = hook.load()
        except (ImportError, AttributeError) as err:  # a broken add-on must not take `aoi` down
            log.warning("command %s (%s) not available: %s", hook.name, hook.value, err)
            continue
        add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    one_malloc_arena()  # before the station starts its threads (aoi/heap.py)
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
