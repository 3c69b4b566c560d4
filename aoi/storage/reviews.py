"""What people write into the defect log: review decisions on defects, and audit events.

Written at once through a short write transaction, not through the journal: the person waits
for the answer and can try again. (Re-exported by :mod:`aoi.storage.queries`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from aoi.storage.db import Database
from aoi.storage.errors import ReviewError
from aoi.storage.tables import AuditEvent, Defect, Review, Verification


@dataclass(frozen=True)
class ReviewRecord:
    id: int
    defect_id: int
    reviewed_at: datetime
    reviewer: str
    decision: str
    comment: str
    previous_state: str


_ALIASES = {v.name.lower(): v for v in Verification} | {v.value: v for v in Verification}


def record_review(
    db: Database,
    defect_id: int,
    who: str,
    decision: Verification | str,
    comment: str = "",
    *,
    station_id: str = "",
) -> ReviewRecord:
    """Record an operator's decision on one defect and set its review state (IPC-CFX values).

    ``decision`` is a :class:`Verification` or its CFX spelling (``DefectRejected``) or name
    (``false_call``). Written at once, not through the journal: the person waits for it.
    """
    found = _ALIASES.get(decision.value if isinstance(decision, Verification) else decision)
    if found is None:
        msg = (
            f"review of defect {defect_id}: decision must be one of "
            f"{sorted(v.value for v in Verification)}, got {decision!r}"
        )
        raise ReviewError(msg)
    if not who.strip():
        msg = f"review of defect {defect_id}: who must name the reviewer, got {who!r}"
        raise ReviewError(msg)
    now = datetime.now(UTC)
    with db.write_session() as s:
        defect = s.get(Defect, defect_id)
        if defect is None:
            msg = f"review: no defect {defect_id} in {db.display}"
            raise ReviewError(msg)
        previous = defect.review_state
        defect.review_state = found.value
        review = Review(
            defect=defect,
            reviewed_at=now,
            reviewer=who,
            station_id=station_id,
            decision=found.value,
            comment=comment,
        )
        s.add(review)
        s.flush()
        return ReviewRecord(review.id, defect_id, now, who, found.value, comment, previous)


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    who: str
    station_id: str
    what: str
    old_value: str | None
    new_value: str | None


def record_audit(
    db: Database,
    who: str,
    what: str,
    old_value: str | None,
    new_value: str | None,
    *,
    station_id: str = "",
) -> AuditRecord:
    """Record that ``who`` changed ``what`` from ``old_value`` to ``new_value``."""
    now = datetime.now(UTC)
    with db.write_session() as s:
        event = AuditEvent(
            at=now,
            who=who,
            station_id=station_id,
            what=what,
            old_value=old_value,
            new_value=new_value,
        )
        s.add(event)
        s.flush()
        return AuditRecord(event.id, now, who, station_id, what, old_value, new_value)


def audit_events(
    db: Database, since: datetime, until: datetime | None = None, *, limit: int = 1000
) -> list[AuditRecord]:
    """Audit events in a time range, newest first."""
    stmt = select(AuditEvent).where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    stmt = stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    with db.session() as s:
        return [
            AuditRecord(e.id, e.at, e.who, e.station_id, e.what, e.old_value, e.new_value)
            for e in s.scalars(stmt)
        ]
