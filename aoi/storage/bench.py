"""Benchmarks of the defect log: writer throughput, and the cycle with logging on against off.

``python -m aoi.storage.bench throughput --db sqlite:///FILE`` publishes synthetic inspections
(5 defects each by default) and times them into the database, through the queue and through
journal replay. ``python -m aoi.storage.bench compare --recipe R --db URL --cycles 2000`` runs
the real cycle on synthetic boards in alternating blocks without and with storage in one process
(same backend, same board stream) and reports both p99s and their ratio. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aoi.config import StationConfig, StorageConfig
from aoi.events import EventBus
from aoi.pipeline import Pipeline, VerdictSink, load_template, run_cycles
from aoi.stats import percentiles
from aoi.storage.journal import Journal
from aoi.storage.records import inspection_record
from aoi.storage.storage import Storage
from aoi.storage.tables import new_uuid
from aoi.types import DEFECT_CLASSES, Defect, Defects, InspectionResult, Registration, Verdict


def synthetic_results(n: int, defects: int = 5) -> list[InspectionResult]:
    """``n`` NG results with ``defects`` defects each, as the cycle would publish them."""
    found = Defects.from_items(
        Defect(1 + k % 6, DEFECT_CLASSES[k % 6], (10 * k, 20, 10 * k + 8, 30), 64, 0.9)
        for k in range(defects)
    )
    stages = {"acquire": 0.2, "register": 3.1, "preprocess": 0.8, "infer": 9.5, "decide": 0.1}
    now = time.time()
    return [
        InspectionResult(
            inspection_id=i + 1,
            frame_id=i,
            frame_name=f"board-{i:06d}",
            recipe_name="bench",
            recipe_hash="0" * 64,
            model_hash="1" * 64,
            backend="onnxruntime",
            verdict=Verdict.NG if defects else Verdict.OK,
            defects=found,
            review_defects=Defects.empty(),
            stages_ms=stages,
            cycle_ms=14.0,
            over_budget=False,
            registration=Registration.identity(0.98, 2.5),
            timestamp_utc=now + i * 1e-3,
            part_sequence=i + 1,
            serial=f"SN{i:08d}",
        )
        for i in range(n)
    ]


def _wait_committed(storage: Storage, n: int, timeout_s: float, field: str = "committed") -> None:
    deadline = time.monotonic() + timeout_s
    while getattr(storage.status(), field) < n:
        if time.monotonic() > deadline:
            msg = f"bench: {getattr(storage.status(), field)} of {n} committed in {timeout_s} s"
            raise TimeoutError(msg)
        time.sleep(0.005)


def throughput(
    url: str | None = None, *, n: int = 5000, defects: int = 5, folder: Path | None = None
) -> dict[str, Any]:
    """Inspections/s into the database, through the queue and by journal replay."""
    with tempfile.TemporaryDirectory(prefix="aoi-bench-") as tmp:
        base = folder or Path(tmp)
        url = url or f"sqlite:///{(base / 'bench.db').as_posix()}"
        config = StorageConfig(archive_images=False, queue_size=max(16, n + 16))
        results = synthetic_results(n, defects)

        live = base / "live-journal"
        config_live = config.model_copy(update={"journal_dir": live})
        with Storage(config_live, station_id="bench", database_url=url) as storage:
            publish_us = []
            t0 = time.perf_counter()
            for r in results:
                t = time.perf_counter_ns()
                storage.publish(r)
                publish_us.append((time.perf_counter_ns() - t) / 1e3)
            _wait_committed(storage, n, 120.0)
            queued_s = time.perf_counter() - t0
            batches = storage.status().batches

        # Replay: records only in a journal (as after a crash or an outage), then start-up.
        replay = base / "replay-journal"
        journal = Journal(replay)
        journal.open()
        for r in results:
            journal.append(inspection_record(r, new_uuid(), "bench", None, None))
        journal.close()
        config_replay = config.model_copy(update={"journal_dir": replay})
        t0 = time.perf_counter()
        with Storage(config_replay, station_id="bench", database_url=url) as storage:
            _wait_committed(storage, n, 120.0, "replayed")
            replay_s = time.perf_counter() - t0
    p = percentiles(publish_us)
    return {
        "database": url,
        "inspections": n,
        "defects_each": defects,
        "queued_inspections_per_s": round(n / queued_s, 1),
        "replay_inspections_per_s": round(n / replay_s, 1),
        "batches": batches,
        "publish_us": {"p50": p["p50"], "p99": p["p99"], "max": p["max"]},
    }


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
    plc_sinks: Sequence[VerdictSink] = (),
) -> dict[str, Any]:
    """The cycle without and with storage, ``cycles`` each, in alternating blocks.

    Both pipelines share the backend, the board stream, the EventBus and ``plc_sinks`` (the PLC
    link, placed after storage as in the station); only the storage sink differs.
    """
    from aoi.inference import create_backend
    from aoi.recipe import find_recipe, load_recipe
    from aoi.sources.factory import create_source

    station = station or StationConfig()
    loaded = load_recipe(find_recipe(str(recipe)))
    g = loaded.recipe.geometry
    template = load_template(
        loaded.template_path, g.frame_width_px, g.frame_height_px, str(loaded.path)
    )
    backend = create_backend(backend_name, loaded.model_path, g.profile, threads=threads)
    source = create_source("synthetic", loaded, template, station, seed=seed)
    events = EventBus()
    times: dict[str, list[float]] = {"off": [], "on": []}
    over = {"off": 0, "on": 0}
    with Storage(station.storage, station_id=station.station_id, database_url=url) as storage:
        events.subscribe("storage", storage.finish)
        storage.note_recipe(loaded.name, loaded.content_hash, loaded.path)
        with backend, events, source:
            off = Pipeline(loaded, backend, template=template, sinks=[*plc_sinks], events=events)
            timed = _Timed(storage)
            on = Pipeline(
                loaded, backend, template=template, sinks=[timed, *plc_sinks], events=events
            )
            off.warm_up()
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
        "backend": backend.name,
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
    parser = argparse.ArgumentParser(prog="python -m aoi.storage.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput", help="writer throughput in inspections/s")
    p.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--defects", type=int, default=5)
    p = sub.add_parser("compare", help="cycle p99 with storage on against off")
    p.add_argument("--recipe", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--cycles", type=int, default=2000)
    p.add_argument("--block", type=int, default=100)
    p.add_argument("--backend", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-archive", action="store_true", help="storage without the image archive")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.command == "throughput":
        out = throughput(args.db, n=args.n, defects=args.defects)
    else:
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
