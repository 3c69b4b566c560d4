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
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from types import FrameType
from typing import Any

from aoi import __version__
from aoi.app.doctor import add_doctor_parser
from aoi.app.engines import add_build_engine_parser
from aoi.app.rig import Rig
from aoi.config import StationConfig, load_station_config
from aoi.errors import AoiError, RecipeError
from aoi.evaluation import add_eval_parser
from aoi.events import EventBus
from aoi.pipeline import VerdictSink, run_cycles
from aoi.recipe import (
    DEFAULT_RECIPE,
    LoadedRecipe,
    find_recipe,
    json_schema,
    load_recipe,
)
from aoi.sources.factory import SOURCE_SPECS
from aoi.stats import RunStats
from aoi.storage.cli import (
    add_db_argument,
    add_prune_parser,
    add_report_parser,
    format_storage_summary,
    open_storage,
    storage_summary,
)
from aoi.types import BackendName, InspectionResult
from plc.errors import UnknownProductCode
from plc.events import ActiveRecipe
from plc.session import SPEC_HELP, PlcSession, open_plc, open_soft_plc, tcp_spec
from plc.settings import LinkSettings
from plc.softplc import SimTiming, SoftPlcLogic

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
    if "plc" in summary:
        q, w = summary["plc"], summary["plc"]["write_ms"]
        print(
            f"plc      parts {q['parts']}  acked {q['acked']}  missed {q['missed']}  "
            f"mismatched {q['mismatched']}  timeouts {q['timeouts']}  "
            f"write p50 {w['p50']:.3f}  p99 {w['p99']:.3f}  max {w['max']:.3f} ms"
        )
    if "storage" in summary:
        print(format_storage_summary(summary["storage"]))
    if as_json:
        print(json.dumps(summary, sort_keys=True))


def active_recipe(loaded: LoadedRecipe) -> ActiveRecipe:
    """What the PLC is told about the recipe on the line."""
    return ActiveRecipe.from_hash(loaded.recipe.product_code, loaded.content_hash, loaded.name)


def recipe_for_product_code(product_code: int, folder: Path) -> Path:
    """The one recipe in ``folder`` whose ``product_code`` is ``product_code``."""
    matches: list[Path] = []
    codes: dict[int, str] = {}
    unreadable: list[str] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            recipe = load_recipe(path, check_files=False).recipe
        except RecipeError:
            unreadable.append(path.name)
            continue
        codes[recipe.product_code] = path.name
        if recipe.product_code == product_code:
            matches.append(path)
    if len(matches) > 1:
        names = [m.name for m in matches]
        msg = f"product code {product_code} is claimed by {names} in {folder}; one recipe per code"
        raise RecipeError(msg)
    if not matches:
        msg = (
            f"no recipe in {folder} has product_code = {product_code}; "
            f"found {dict(sorted(codes.items())) or 'none'}"
            + (f"; unreadable: {unreadable}" if unreadable else "")
        )
        raise UnknownProductCode(msg)
    return matches[0]


class _RecipeSwitch:
    """The PLC link's ``on_recipe_change``: builds the new product's rig on the cycle's thread.

    It runs inside ``wait_trigger`` (between parts, READY low), keeps the new rig as ``pending``
    and sets ``interrupt`` so that :func:`_serve` ends the current ``run_cycles`` and swaps rigs
    before the next trigger is taken.
    """

    def __init__(self, open_rig: Callable[[LoadedRecipe], Rig], folder: Path) -> None:
        self.open_rig = open_rig
        self.folder = folder
        self.interrupt = threading.Event()
        self.pending: Rig | None = None

    def __call__(self, product_code: int) -> ActiveRecipe:
        loaded = load_recipe(recipe_for_product_code(product_code, self.folder))
        print(f"[aoi] PLC: loading {loaded.name} (product code {product_code})", file=sys.stderr)
        rig = self.open_rig(loaded)
        self.discard()
        self.pending = rig
        self.interrupt.set()
        return active_recipe(rig.loaded)

    def discard(self) -> None:
        if self.pending is not None:
            self.pending.close()
            self.pending = None


def _serve(
    rig: Rig,
    plc: PlcSession | None,
    switch: _RecipeSwitch,
    stop: threading.Event,
    cycles: int | None,
    grab_timeout_s: float,
) -> tuple[RunStats, Rig]:
    """Run cycles until done or stopped, switching rigs whenever the PLC changed the recipe.

    Closes every rig it ran; returns the last one (closed) for the summary.
    """
    stats = RunStats(budget_ms=rig.loaded.recipe.cycle_budget_ms)
    progress = _Progress(cycles)

    def on_result(r: InspectionResult) -> None:
        stats.add(r)
        progress(r)

    try:
        while not stop.is_set():
            remaining = None if cycles is None else cycles - stats.cycles
            if remaining is not None and remaining <= 0:
                break
            switch.interrupt.clear()
            if stop.is_set():  # a signal between the two checks
                break
            run_cycles(
                rig.pipeline,
                rig.source,
                cycles=remaining,
                stop=switch.interrupt,
                grab_timeout_s=grab_timeout_s,
                on_result=on_result,
                triggers=plc.link if plc is not None else None,
            )
            if switch.pending is None:
                break  # done, stopped or the source ran out
            rig.close()
            rig, switch.pending = switch.pending, None
    finally:
        rig.close()
    return stats, rig


@contextmanager
def _signals_call(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``handler`` inside the block; the previous handlers come back."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _link_settings(args: argparse.Namespace, station: StationConfig) -> LinkSettings:
    source = f"{args.station or 'station config'}: [plc]"
    return LinkSettings.from_dict(station.plc.model_dump(), source=source)


def _plc_spec(args: argparse.Namespace, station: StationConfig) -> str:
    """``--plc``; else (``aoi run``) the PLC a station config's ``[plc]`` names; else the default.

    ``aoi bench`` never talks to the line's PLC unless told to: a benchmark must not wait for
    (or trigger) a real line.
    """
    if args.plc is not None:
        return str(args.plc)
    if getattr(args, "plc_from_station", False) and "plc" in station.model_fields_set:
        return tcp_spec(station.plc.host, station.plc.port)
    return str(args.default_plc)


def _run(args: argparse.Namespace, *, source_spec: str, cycles: int | None) -> int:
    loaded, station = _open_station(args)
    stop = threading.Event()
    settings = _link_settings(args, station)
    plc_spec = _plc_spec(args, station)

    with ExitStack() as stack:
        # Storage opens first so it closes last, after the PLC and the event bus have drained.
        # `aoi run` always keeps the defect log; `aoi bench` only when told where (--db).
        storage = None
        if args.command == "run" or args.db:
            storage = stack.enter_context(open_storage(args.db, station))
        bus = EventBus()
        if storage is not None:
            bus.subscribe("storage", storage.finish)
        events = stack.enter_context(bus)
        # The journal write comes before the PLC write: a verdict the PLC saw is never lost.
        sinks: list[VerdictSink] = [storage] if storage is not None else []

        def open_rig(recipe: LoadedRecipe) -> Rig:
            if storage is not None:
                storage.note_recipe(recipe.name, recipe.content_hash, recipe.path)
            return Rig(
                recipe,
                station,
                source_spec=source_spec,
                sinks=sinks,
                events=events,
                backend=args.backend,
                threads=args.threads,
                seed=args.seed,
                loop=getattr(args, "loop", False),
            )

        switch = _RecipeSwitch(open_rig, loaded.path.parent)
        stack.callback(switch.discard)

        def _stop(signum: int, _frame: FrameType | None) -> None:
            print(f"[aoi] signal {signum}: finishing the current board", file=sys.stderr)
            stop.set()
            switch.interrupt.set()

        stack.enter_context(_signals_call(_stop))
        plc = stack.enter_context(
            open_plc(
                plc_spec,
                settings,
                role=args.plc_role,
                sim_parts=cycles,
                on_recipe_change=switch,
            )
        )
        if plc is not None:
            sinks.append(plc.link)
        rig = open_rig(loaded)
        if plc is not None:
            plc.link.set_station_ready(active_recipe(rig.loaded))
        print(
            f"[aoi] {loaded.name} on {source_spec} with {rig.backend.name}, PLC {plc_spec}: READY",
            file=sys.stderr,
            flush=True,
        )
        stats, rig = _serve(rig, plc, switch, stop, cycles, station.camera.fetch_timeout_s)
        extra: dict[str, Any] = {"source": source_spec}
    if storage is not None:
        extra["storage"] = storage_summary(storage)  # final: the writer has drained
    if plc is not None:
        extra["plc"] = plc.summary()  # after the soft PLC finished its last handshake
        if plc.sim is not None:
            d = plc.sim.report.details()
            t = d["trigger_to_result_ms"]
            print(
                f"[aoi] soft PLC: trigger to result p50 {t['p50']:.1f}  p99 {t['p99']:.1f}  "
                f"max {t['max']:.1f} ms; station errors cleared {d['station_errors'] or 0}",
                file=sys.stderr,
            )
    summary = _summary(stats, rig.loaded, rig.backend.name, rig.backend.model_hash, extra)
    _print_summary(summary, args.json)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args, source_spec=args.source, cycles=args.cycles)


def cmd_bench(args: argparse.Namespace) -> int:
    return _run(args, source_spec="synthetic", cycles=args.cycles)


def cmd_plc_sim(args: argparse.Namespace) -> int:
    """A soft PLC against a station; exit 1 unless every part was answered and matched."""
    settings = _link_settings(args, load_station_config(args.station))
    heartbeat_ms = args.heartbeat_ms or settings.heartbeat_period_ms
    timing = SimTiming(
        heartbeat_period_s=heartbeat_ms / 1000,
        watchdog_periods=settings.watchdog_periods,
        part_period_s=args.period_ms / 1000,
    )
    logic = SoftPlcLogic(args.parts, timing, product_code=args.product_code)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        print(f"[plc-sim] signal {signum}: finishing the part in flight", file=sys.stderr)
        stop.set()

    where = f"{args.host}:{args.port}"
    with (
        _signals_call(_stop),
        open_soft_plc(
            args.role, args.host, args.port, settings, logic, scan_s=args.scan_ms / 1000
        ) as sim,
    ):
        print(f"[plc-sim] soft PLC as {args.role} on {where}", file=sys.stderr, flush=True)
        last = time.monotonic()
        while not stop.is_set() and not sim.wait_done(0.2):
            if time.monotonic() - last >= 2.0:
                last = time.monotonic()
                print(f"[plc-sim] {sim.report.summary()}", file=sys.stderr, flush=True)
        sim.finish(timing.result_timeout_s)
    report = sim.report.details()
    for key, value in report.items():
        print(f"{key:<24} {value}")
    for problem in sim.report.problems:
        print(f"problem: {problem}")
    if args.json:
        print(json.dumps(report, sort_keys=True))
    r = sim.report
    clean = r.acked == r.parts and not (r.missed or r.mismatched or r.timeouts)
    return 0 if clean else 1


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

    from aoi.sources.synthetic.boardgen import golden_board

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


def _add_station_args(
    p: argparse.ArgumentParser, *, default_cycles: int | None, default_plc: str
) -> None:
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
        choices=BackendName.choices(),
        default=None,
        help="inference backend (default from the station config: auto)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the network")
    p.add_argument(
        "--seed", type=int, default=None, help="synthetic source seed (default recipe's)"
    )
    p.add_argument("--station", default=None, help="station config TOML (default: none)")
    p.add_argument(
        "--plc",
        default=None,
        help=f"PLC link: {SPEC_HELP}; sim starts a soft PLC in-process on 127.0.0.1 (default "
        + (
            f"{default_plc})"
            if default_plc == "none"
            else f"the PLC of the station config's [plc] section, else {default_plc})"
        ),
    )
    p.add_argument(
        "--plc-role",
        choices=["server", "client"],
        default=None,
        help="station as Modbus server polled by the PLC, or as client writing into the PLC "
        "(default from the station config: server)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")
    add_db_argument(p)
    p.set_defaults(default_plc=default_plc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aoi", description="AOI station for bare PCBs")
    parser.add_argument("--version", action="version", version=f"aoi {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("run", help="run the station headless")
    _add_station_args(p, default_cycles=None, default_plc="sim")
    p.set_defaults(plc_from_station=True)
    p.add_argument("--source", default="synthetic", help=f"image source: {SOURCE_SPECS}")
    p.add_argument("--loop", action="store_true", help="replay: start again after the last image")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("bench", help="benchmark the cycle on synthetic boards")
    _add_station_args(p, default_cycles=200, default_plc="none")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "plc-sim", help="soft PLC: drive a station's handshake over Modbus TCP (commissioning)"
    )
    p.add_argument("--host", default="127.0.0.1", help="station address, or where to listen")
    p.add_argument("--port", type=int, default=502, help="Modbus TCP port (default 502)")
    p.add_argument(
        "--role",
        choices=["client", "server"],
        default="client",
        help="the soft PLC's role: client polls a station that serves (default); server holds "
        "the registers a station in the client role writes into",
    )
    p.add_argument("--parts", type=int, default=None, help="parts to run (default: until Ctrl-C)")
    p.add_argument(
        "--period-ms",
        type=float,
        default=0.0,
        help="a part every T ms whether the station is ready or not (default 0: when READY)",
    )
    p.add_argument("--product-code", type=int, default=None, help="LOAD_RECIPE this code first")
    p.add_argument("--heartbeat-ms", type=float, default=None, help="heartbeat period")
    p.add_argument("--scan-ms", type=float, default=5.0, help="PLC scan time (default 5 ms)")
    p.add_argument("--station", default=None, help="station config TOML for [plc] and the map")
    p.add_argument("--json", action="store_true", help="print the report as JSON on the last line")
    p.set_defaults(func=cmd_plc_sim)

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

    add_eval_parser(sub)
    add_report_parser(sub)
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
