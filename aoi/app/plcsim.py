"""``aoi plc-sim``: a stand-alone soft PLC that drives a station's handshake (commissioning).

The command prints (it is a front end); :func:`run_plc_sim` is the part a test or a tool calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aoi.app.signals import stop_on_signals
from aoi.config import load_station_config
from plc.config import Role
from plc.session import open_soft_plc
from plc.softplc import SimTiming, SoftPlcLogic


@dataclass(frozen=True)
class PlcSimOptions:
    host: str = "127.0.0.1"
    port: int = 502
    #: The soft PLC's own role: client polls a station that serves; server holds the registers.
    role: Role = "client"
    parts: int | None = None
    period_ms: float = 0.0
    product_code: int | None = None
    heartbeat_ms: float | None = None
    scan_ms: float = 5.0
    station: str | None = None


@dataclass(frozen=True)
class PlcSimOutcome:
    details: dict[str, Any]
    problems: tuple[str, ...]
    #: Every part answered and matched, nothing missed or timed out.
    clean: bool


def run_plc_sim(
    options: PlcSimOptions,
    stop: threading.Event,
    *,
    on_started: Callable[[], None] = lambda: None,
    on_progress: Callable[[str], None] = lambda _: None,
    progress_every_s: float = 2.0,
) -> PlcSimOutcome:
    """Run the soft PLC until its parts are done or ``stop`` is set; the line's view of it."""
    config = load_station_config(options.station).plc
    source = f"{options.station or 'station config'}: [plc]"
    heartbeat_ms = options.heartbeat_ms or config.heartbeat_period_ms
    timing = SimTiming(
        heartbeat_period_s=heartbeat_ms / 1000,
        watchdog_periods=config.watchdog_periods,
        part_period_s=options.period_ms / 1000,
    )
    logic = SoftPlcLogic(options.parts, timing, product_code=options.product_code)
    with open_soft_plc(
        options.role,
        options.host,
        options.port,
        config,
        logic,
        source=source,
        scan_s=options.scan_ms / 1000,
    ) as sim:
        on_started()
        last = time.monotonic()
        while not stop.is_set() and not sim.wait_done(0.2):
            if time.monotonic() - last >= progress_every_s:
                last = time.monotonic()
                on_progress(sim.report.summary())
        sim.finish(timing.result_timeout_s)
    r = sim.report
    clean = r.acked == r.parts and not (r.missed or r.mismatched or r.timeouts)
    return PlcSimOutcome(r.details(), tuple(r.problems), clean)


def cmd_plc_sim(args: argparse.Namespace) -> int:
    """A soft PLC against a station; exit 1 unless every part was answered and matched."""
    options = PlcSimOptions(
        host=args.host,
        port=args.port,
        role=args.role,
        parts=args.parts,
        period_ms=args.period_ms,
        product_code=args.product_code,
        heartbeat_ms=args.heartbeat_ms,
        scan_ms=args.scan_ms,
        station=args.station,
    )
    stop = threading.Event()
    where = f"{args.host}:{args.port}"
    with stop_on_signals(stop, "plc-sim", "finishing the part in flight"):
        outcome = run_plc_sim(
            options,
            stop,
            on_started=lambda: print(
                f"[plc-sim] soft PLC as {args.role} on {where}", file=sys.stderr, flush=True
            ),
            on_progress=lambda s: print(f"[plc-sim] {s}", file=sys.stderr, flush=True),
        )
    for key, value in outcome.details.items():
        print(f"{key:<24} {value}")
    for problem in outcome.problems:
        print(f"problem: {problem}")
    if args.json:
        print(json.dumps(outcome.details, sort_keys=True))
    return 0 if outcome.clean else 1


def add_plc_sim_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plc-sim", help="soft PLC: drive a station's handshake over Modbus TCP (commissioning)"
    )
    p.add_argument("--host", default="127.0.0.1", help="station address, or where to listen")
    p.add_argument("--port", type=int, default=502, help="Modbus TCP port (default 502)")
    p.add_argument(
        "--role",
        choices=["client", "server"],
        default="client",
        help="the soft PLC's role: client polls a station that serves (default); "
        "server holds the registers a station in the client role writes into",
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
