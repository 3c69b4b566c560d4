"""Command-line pieces of storage: ``aoi report``, and what ``aoi run``/``aoi bench`` need for
``--db``. The main parser (``aoi/cli.py``) mounts them; this module prints, the rest logs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aoi.config import StationConfig, StorageConfig, load_station_config
from aoi.storage.db import Database, default_data_dir, default_url
from aoi.storage.queries import Window, find_inspections
from aoi.storage.report import (
    build_report,
    parse_age,
    parse_since,
    render,
    render_lookup,
    write_csv,
)
from aoi.storage.retention import prune_rows
from aoi.storage.storage import Storage

DB_HELP = (
    "database URL (sqlite:///FILE or postgresql+psycopg://USER@HOST/DB); default from the "
    "station config's [storage] database_url, else a SQLite file in the user's data folder"
)


@contextmanager
def open_storage(url: str | None, station: StationConfig) -> Iterator[Storage]:
    """The station's defect log, started: ``url`` (``--db``) overrides the station config.

    Put the storage before the PLC in the pipeline's sinks, subscribe ``storage.finish`` to the
    EventBus (before the bus starts), and call ``storage.note_recipe`` for the loaded recipe.
    """
    with Storage(station.storage, station_id=station.station_id, database_url=url) as storage:
        yield storage


def storage_summary(storage: Storage) -> dict[str, Any]:
    """What the run's JSON summary says about storage (final once the with block has ended)."""
    h = storage.status()
    return {
        "database": h.database,
        "journal": str(storage.journal_dir),
        "archive": str(storage.archive_dir) if storage.config.archive_images else None,
        "published": h.published,
        "committed": h.committed,
        "pending": h.pending,
        "replayed": h.replayed,
        "batches": h.batches,
        "queue_overflows": h.queue_overflows,
        "db_failures": h.db_failures,
        "journal_failures": h.journal_failures,
        "rejected": h.rejected,
        "lost": h.lost,
        "archive_written": h.archive_written,
        "archive_dropped": h.archive_dropped,
        "archive_failed": h.archive_failed,
        "alarms": list(h.alarms),
    }


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    """``--db URL`` for ``aoi run`` and ``aoi bench``."""
    parser.add_argument("--db", default=None, metavar="URL", help=DB_HELP)


def format_storage_summary(summary: dict[str, Any]) -> str:
    """The text line(s) of :func:`storage_summary` for the run's printed summary."""
    line = (
        f"storage  {summary['database']}  committed {summary['committed']} of "
        f"{summary['published']}  pending {summary['pending']}  "
        f"images {summary['archive_written']} (dropped {summary['archive_dropped']}, "
        f"failed {summary['archive_failed']})"
    )
    return "\n".join([line, *(f"  ALARM {a}" for a in summary["alarms"])])


def _zone(config: StorageConfig) -> tzinfo | None:
    return ZoneInfo(config.timezone) if config.timezone else None


def _storage_and_url(args: argparse.Namespace) -> tuple[StorageConfig, str]:
    """The station config's ``[storage]`` (``--station``) and the database ``--db`` names, else
    the config's, else the SQLite file in the user's data folder."""
    config = load_station_config(args.station).storage
    return config, args.db or config.database_url or default_url(default_data_dir())


def cmd_report(args: argparse.Namespace) -> int:
    config, url = _storage_and_url(args)
    tz = _zone(config)
    with Database(url, busy_timeout_ms=config.busy_timeout_ms) as db:
        db.require_schema()
        if args.serial is not None or args.part_sequence is not None:
            records = find_inspections(
                db, serial=args.serial, part_sequence=args.part_sequence, limit=args.limit
            )
            print(render_lookup(records, tz))
            if args.json:
                print(json.dumps([asdict(r) for r in records], default=str, sort_keys=True))
            return 0 if records else 1
        window = Window(
            since=parse_since(args.since, tz),
            until=parse_since(args.until, tz) if args.until else None,
            recipe=args.recipe,
            station_id=args.station_id,
        )
        report = build_report(db, window, shift_starts_h=config.shift_starts_h, tz=tz)
        print(render(report))
        if args.csv:
            n = write_csv(db, window, Path(args.csv))
            print(f"wrote {n} inspections to {args.csv}")
        if args.json:
            print(json.dumps(report, sort_keys=True))
    return 0


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``aoi report`` to the main parser's subcommands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="yield, defect Pareto, false calls and cycle times from the defect log",
        description=(
            "Print yield per hour/shift/recipe, the defect Pareto, false-call rate and cycle "
            "time distribution of the inspections since a time; --serial/--part-sequence "
            "look one board up instead."
        ),
    )
    p.add_argument("--since", default="24h", help="24h, 7d, 2w, 90m, or an ISO date/time")
    p.add_argument("--until", default=None, help="end of the window (default: now)")
    p.add_argument("--recipe", default=None, help="only this recipe")
    p.add_argument("--station-id", default=None, help="only this station (fleet database)")
    p.add_argument("--serial", default=None, help="look up the inspections of one serial")
    p.add_argument("--part-sequence", type=int, default=None, help="look up a PLC part sequence")
    p.add_argument("--limit", type=int, default=20, help="inspections a lookup shows")
    p.add_argument("--csv", default=None, metavar="FILE", help="export the inspections as CSV")
    p.add_argument("--json", action="store_true", help="print the report as JSON on the last line")
    add_db_argument(p)
    p.add_argument("--station", default=None, help="station config TOML (default: none)")
    p.set_defaults(func=cmd_report)
    return p


def cmd_prune(args: argparse.Namespace) -> int:
    config, url = _storage_and_url(args)
    age = parse_age(args.older_than)
    with Database(url, busy_timeout_ms=config.busy_timeout_ms) as db:
        db.require_schema()
        done = prune_rows(db, age, include_unreviewed=args.include_unreviewed, dry_run=args.dry_run)
    verb = "would delete" if done.dry_run else "deleted"
    print(
        f"{db.display}: {verb} {done.inspections} inspections older than "
        f"{done.cutoff:%Y-%m-%d %H:%M} UTC, {done.defects} defects, {done.reviews} reviews; "
        f"kept {done.kept_unreviewed} old boards still waiting for review"
    )
    if args.json:
        print(json.dumps({**asdict(done), "cutoff": done.cutoff.isoformat()}, sort_keys=True))
    return 0


def add_prune_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``aoi prune`` (retention of database rows) to the main parser's subcommands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "prune",
        help="delete defect-log rows older than an age (the image archive prunes itself)",
        description=(
            "Delete inspections older than --older-than, with their defects and reviews, in "
            "short batches (a running station keeps writing). Boards whose defects still wait "
            "for review are kept unless --include-unreviewed."
        ),
    )
    p.add_argument("--older-than", required=True, help="age like 365d, 52w, 90d")
    p.add_argument(
        "--include-unreviewed", action="store_true", help="also delete boards waiting for review"
    )
    p.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    p.add_argument("--json", action="store_true", help="print the counts as JSON on the last line")
    add_db_argument(p)
    p.add_argument("--station", default=None, help="station config TOML (default: none)")
    p.set_defaults(func=cmd_prune)
    return p
