"""Benchmark of the defect log alone: writer throughput into the database.

``python -m aoi.storage.bench throughput --db sqlite:///FILE`` publishes synthetic inspections
(5 defects each by default) and times them into the database, through the queue and through
journal replay. Prints one JSON object. The cycle with logging on against off runs the whole
station and lives above storage: ``python -m aoi.app.bench``.
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

from aoi.config import StorageConfig
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aoi.storage.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput", help="writer throughput in inspections/s")
    p.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--defects", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    out = throughput(args.db, n=args.n, defects=args.defects)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
