"""The cycle with the defect log on against off, in one process: what logging costs the cycle.

``python -m aoi.app.bench --recipe R --db URL --cycles 2000`` runs the real cycle on synthetic
boards in alternating blocks without and with storage (same rig: backend, template and board
stream) and reports both p99s and their ratio. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aoi.app.rig import Rig
from aoi.app.station import critical_sinks
from aoi.config import StationConfig, StorageConfig
from aoi.events import EventBus
from aoi.pipeline import VerdictSink, run_cycles
from aoi.recipe import find_recipe, load_recipe
from aoi.stats import percentiles
from aoi.storage.storage import Storage
from aoi.types import BackendName, InspectionResult


class _Timed:
    """A sink that times another sink's ``publish`` (its share of the critical path)."""

    def __init__(self, sink: VerdictSink) -> None:
        self.sink = sink
        self.us: list[float] = []

    def publish(self, result: InspectionResult) -> None:
        t = time.perf_counter_ns()
        self.sink.publish(result)
        self.us.append((time.perf_counter_ns() - t) / 1e3)


def compare(
    recipe: str | Path,
    url: str,
    *,
    cycles: int = 2000,
    block: int = 100,
    backend_name: str = "auto",
    threads: int = 0,
    seed: int | None = None,
    station: StationConfig | None = None,
    plc_sink: VerdictSink | None = None,
) -> dict[str, Any]:
    """The cycle without and with storage, ``cycles`` each, in alternating blocks.

    Both pipelines share the backend, the board stream, the EventBus and ``plc_sink`` (the PLC
    link, placed after storage as in the station); only the storage sink differs.
    """
    station = station or StationConfig()
    loaded = load_recipe(find_recipe(str(recipe)))
    events = EventBus()
    times: dict[str, list[float]] = {"off": [], "on": []}
    over = {"off": 0, "on": 0}
    rig = Rig(loaded, station, source_spec="synthetic", backend=backend_name, threads=threads,
              seed=seed)  # fmt: skip
    with Storage(station.storage, station_id=station.station_id, database_url=url) as storage:
        events.subscribe("storage", storage.finish)
        storage.note_recipe(loaded.name, loaded.content_hash, loaded.path)
        with rig, events:
            timed = _Timed(storage)
            off = rig.pipeline_for(loaded, critical_sinks(None, plc_sink), events)
            on = rig.pipeline_for(loaded, critical_sinks(timed, plc_sink), events)
            source = rig.source
            run_cycles(off, source, cycles=20)
            run_cycles(on, source, cycles=20)
            for k in range(-(-cycles // block)):
                n = min(block, cycles - k * block)
                for name, pipe in (
                    (("off", off), ("on", on)) if k % 2 == 0 else (("on", on), ("off", off))
                ):
                    stats = run_cycles(pipe, source, cycles=n)
                    times[name] += stats.cycle_ms
                    over[name] += stats.over_budget
        published = storage.status().published
    status = storage.status()
    p_off, p_on = percentiles(times["off"]), percentiles(times["on"])
    return {
        "recipe": loaded.name,
        "backend": rig.backend.name,
        "database": status.database,
        "cycles_each": cycles,
        "block": block,
        "cycle_ms_off": p_off,
        "cycle_ms_on": p_on,
        "mean_ms_off": round(float(np.mean(times["off"])), 3),
        "mean_ms_on": round(float(np.mean(times["on"])), 3),
        "over_budget_off": over["off"],
        "over_budget_on": over["on"],
        "p99_ratio_on_off": round(p_on["p99"] / p_off["p99"], 4) if p_off["p99"] else None,
        "publish_us": percentiles(timed.us),
        "published": published,
        "committed": status.committed,
        "alarms": list(status.alarms),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aoi.app.bench", description=__doc__)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--backend", choices=BackendName.choices(), default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-archive", action="store_true", help="storage without the archive")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    out = compare(
        args.recipe,
        args.db,
        cycles=args.cycles,
        block=args.block,
        backend_name=args.backend,
        threads=args.threads,
        seed=args.seed,
        station=StationConfig(storage=StorageConfig(archive_images=not args.no_archive)),
    )
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
