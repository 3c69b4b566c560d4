"""Retention of database rows: ``aoi prune --older-than 365d``.

The image archive deletes its own old day folders (``aoi.storage.archive``); the rows of the
defect log are kept until this prune removes them. A station logs one row per board plus one per
defect, so a line running a board a second adds about 30 million rows a year.

Rules:

- Inspections older than the cutoff go, with their defects and those defects' reviews.
- An NG or REVIEW board with a defect nobody has reviewed yet stays (it is still in the review
  queue), unless ``include_unreviewed`` says otherwise.
- Rows go in batches of ``batch`` inspections, one short write transaction each, so a station
  writing at the same time waits at most one batch for the database lock.
- ``dry_run`` counts what would go and deletes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select

from aoi.storage.db import Database
from aoi.storage.tables import Defect, Inspection, Review, Verification


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or, dry, would remove), and what it kept on purpose."""

    cutoff: datetime
    inspections: int
    defects: int
    reviews: int
    kept_unreviewed: int
    dry_run: bool


def _unreviewed() -> Select[Any]:
    """Inspections that still have a defect waiting in the review queue."""
    return (
        select(Defect.inspection_uuid)
        .join(Inspection, Inspection.uuid == Defect.inspection_uuid)
        .where(
            Defect.review_state == Verification.NOT_VERIFIED.value,
            Inspection.verdict.in_(["NG", "REVIEW"]),
        )
        .distinct()
    )


def prune_rows(
    db: Database,
    older_than: timedelta,
    *,
    include_unreviewed: bool = False,
    dry_run: bool = False,
    batch: int = 2000,
    now: datetime | None = None,
) -> PruneResult:
    """Delete inspections older than ``older_than`` (see the module); returns the counts."""
    if older_than <= timedelta(0):
        msg = f"prune: the age must be positive, got {older_than}"
        raise ValueError(msg)
    if batch < 1:
        msg = f"prune: batch must be at least 1, got {batch}"
        raise ValueError(msg)
    cutoff = (now or datetime.now(UTC)) - older_than
    old = Inspection.inspected_at < cutoff
    with db.session() as s:
        kept = 0
        if not include_unreviewed:
            kept = (
                s.scalar(
                    select(func.count())
                    .select_from(Inspection)
                    .where(old, Inspection.uuid.in_(_unreviewed()))
                )
                or 0
            )
    chosen = select(Inspection.uuid).where(old)
    if not include_unreviewed:
        chosen = chosen.where(Inspection.uuid.not_in(_unreviewed()))
    if dry_run:
        # Counted in the database: a year of rows is too many to fetch just to count them.
        defects = select(Defect.id).where(Defect.inspection_uuid.in_(chosen))
        with db.session() as s:
            n_insp = s.scalar(select(func.count()).select_from(chosen.subquery())) or 0
            n_def = s.scalar(select(func.count()).select_from(defects.subquery())) or 0
            n_rev = (
                s.scalar(
                    select(func.count()).select_from(Review).where(Review.defect_id.in_(defects))
                )
                or 0
            )
        return PruneResult(cutoff, n_insp, n_def, n_rev, kept, dry_run=True)
    totals = [0, 0, 0]
    while True:
        with db.write_session() as s:
            uuids = list(s.scalars(chosen.limit(batch)))
            if not uuids:
                break
            defects = select(Defect.id).where(Defect.inspection_uuid.in_(uuids))
            totals[2] += s.execute(delete(Review).where(Review.defect_id.in_(defects))).rowcount
            totals[1] += s.execute(delete(Defect).where(Defect.inspection_uuid.in_(uuids))).rowcount
            totals[0] += s.execute(delete(Inspection).where(Inspection.uuid.in_(uuids))).rowcount
    return PruneResult(cutoff, totals[0], totals[1], totals[2], kept, dry_run=False)
