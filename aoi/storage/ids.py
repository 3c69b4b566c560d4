"""The last inspection id a station gave, so a restarted station goes on from there.

Inspection ids are unique for the life of the database per station (plc/README.md): the PLC,
the log and the database name one inspection by one number. At start the station continues
after the highest id it finds in the database or in the journal (records a crash or an outage
left there are replayed into the database later, with their ids).
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import func, select

from aoi.storage.db import DB_ERRORS, Database
from aoi.storage.journal import Journal
from aoi.storage.records import INSPECTION
from aoi.storage.tables import Inspection

log = logging.getLogger(__name__)


def last_in_database(db: Database, station_id: str) -> int | None:
    """The station's highest inspection id in the database; None when it cannot be read."""
    stmt = select(func.max(Inspection.inspection_id)).where(Inspection.station_id == station_id)
    try:
        with db.session() as s:
            return int(s.scalar(stmt) or 0)
    except DB_ERRORS as err:
        log.warning("last inspection id not read from the database: %s", err)
        return None


def last_in_journal(journal: Journal, station_id: str) -> int:
    """The station's highest inspection id among the records still in the journal (damaged
    lines are skipped here: the writer's replay reports them)."""
    last = 0
    for number in journal.segments():
        path = journal.segment_path(number)
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            continue  # pruned meanwhile, or unreadable: the writer's replay says so
        for line in lines:
            if b'"inspection_id"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(record, dict)
                and record.get("t") == INSPECTION
                and record.get("station_id") == station_id
            ):
                last = max(last, int(record.get("inspection_id") or 0))
    return last


def last_inspection_id(db: Database, journal: Journal, station_id: str) -> int:
    """The highest id this station gave: in the database, still in the journal, or noted in
    the journal's checkpoint (read when the journal opened)."""
    return max(
        last_in_database(db, station_id) or 0,
        last_in_journal(journal, station_id),
        journal.last_id,
    )
