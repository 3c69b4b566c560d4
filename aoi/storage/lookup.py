"""Looking boards up in the defect log: one board's inspections, the review queue, the export.

(Re-exported by :mod:`aoi.storage.queries`.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from aoi.storage.db import Database
from aoi.storage.tables import Defect, Inspection, Verification
from aoi.storage.window import Window


@dataclass(frozen=True)
class DefectRecord:
    id: int
    band: str
    class_id: int
    class_name: str
    bbox_xyxy_px: tuple[int, int, int, int]
    area_px: int
    score: float
    review_state: str


@dataclass(frozen=True)
class InspectionRecord:
    uuid: str
    station_id: str
    inspected_at: datetime
    inspection_id: int
    part_sequence: int
    serial: str
    recipe_name: str
    recipe_hash: str
    model_hash: str
    backend: str
    verdict: str
    cycle_ms: float
    over_budget: bool
    stages_ms: dict[str, float]
    error: str
    error_kind: str
    verdict_reason: str
    #: The verdict the line received (None: no PLC answer recorded) and the link fault.
    line_verdict: str | None
    line_error: str
    image_path: str | None
    preview_path: str | None
    defects: tuple[DefectRecord, ...]


def _record(i: Inspection) -> InspectionRecord:
    return InspectionRecord(
        uuid=str(i.uuid),
        station_id=i.station_id,
        inspected_at=i.inspected_at,
        inspection_id=i.inspection_id,
        part_sequence=i.part_sequence,
        serial=i.serial,
        recipe_name=i.recipe_name,
        recipe_hash=i.recipe_hash,
        model_hash=i.model_hash,
        backend=i.backend,
        verdict=i.verdict,
        cycle_ms=i.cycle_ms,
        over_budget=i.over_budget,
        stages_ms=dict(i.stages_ms),
        error=i.error,
        error_kind=i.error_kind,
        verdict_reason=i.verdict_reason,
        line_verdict=i.line_verdict,
        line_error=i.line_error,
        image_path=i.image_path,
        preview_path=i.preview_path,
        defects=tuple(
            DefectRecord(
                d.id,
                d.band,
                d.class_id,
                d.class_name,
                (d.x0_px, d.y0_px, d.x1_px, d.y1_px),
                d.area_px,
                d.score,
                d.review_state,
            )
            for d in i.defects
        ),
    )


def find_inspections(
    db: Database,
    *,
    serial: str | None = None,
    part_sequence: int | None = None,
    inspection_uuid: str | None = None,
    station_id: str | None = None,
    limit: int = 50,
) -> list[InspectionRecord]:
    """Inspections of one board (by serial, PLC part sequence or UUID), newest first."""
    if serial is None and part_sequence is None and inspection_uuid is None:
        msg = "find_inspections needs serial, part_sequence or inspection_uuid"
        raise ValueError(msg)
    stmt = select(Inspection).options(selectinload(Inspection.defects))
    if serial is not None:
        stmt = stmt.where(Inspection.serial == serial)
    if part_sequence is not None:
        stmt = stmt.where(Inspection.part_sequence == part_sequence)
    if inspection_uuid is not None:
        stmt = stmt.where(Inspection.uuid == uuid.UUID(inspection_uuid))
    if station_id is not None:
        stmt = stmt.where(Inspection.station_id == station_id)
    stmt = stmt.order_by(Inspection.inspected_at.desc()).limit(limit)
    with db.session() as s:
        return [_record(i) for i in s.scalars(stmt)]


def _review_clauses(station_id: str | None) -> list[Any]:
    pending = (
        select(Defect.inspection_uuid)
        .where(Defect.review_state == Verification.NOT_VERIFIED.value)
        .distinct()
    )
    clauses = [Inspection.verdict.in_(["NG", "REVIEW"]), Inspection.uuid.in_(pending)]
    if station_id is not None:
        clauses.append(Inspection.station_id == station_id)
    return clauses


def review_queue(
    db: Database, *, station_id: str | None = None, limit: int = 50, oldest_first: bool = False
) -> list[InspectionRecord]:
    """NG and REVIEW boards with defects nobody has reviewed yet, newest first (or oldest)."""
    order = Inspection.inspected_at.asc() if oldest_first else Inspection.inspected_at.desc()
    stmt = (
        select(Inspection)
        .options(selectinload(Inspection.defects))
        .where(*_review_clauses(station_id))
        .order_by(order)
        .limit(limit)
    )
    with db.session() as s:
        return [_record(i) for i in s.scalars(stmt)]


def count_review_queue(db: Database, *, station_id: str | None = None) -> int:
    """How many boards :func:`review_queue` holds in all (not only the ones a page shows)."""
    stmt = select(func.count()).select_from(Inspection).where(*_review_clauses(station_id))
    with db.session() as s:
        return int(s.execute(stmt).scalar_one())


_EXPORT = (
    Inspection.uuid,
    Inspection.inspected_at,
    Inspection.station_id,
    Inspection.recipe_name,
    Inspection.recipe_hash,
    Inspection.model_hash,
    Inspection.serial,
    Inspection.part_sequence,
    Inspection.inspection_id,
    Inspection.verdict,
    Inspection.defect_count,
    Inspection.review_count,
    Inspection.top_class,
    Inspection.cycle_ms,
    Inspection.over_budget,
    Inspection.error,
    Inspection.error_kind,
    Inspection.verdict_reason,
    Inspection.line_verdict,
    Inspection.line_error,
    Inspection.image_path,
)
EXPORT_FIELDS: list[str] = [c.key for c in _EXPORT]


def iter_inspections(
    db: Database, window: Window, *, chunk: int = 1000
) -> Iterator[dict[str, Any]]:
    """Every inspection in the window, oldest first, as flat rows (for CSV export)."""
    stmt = select(*_EXPORT).where(*window.clauses()).order_by(Inspection.inspected_at)
    with db.session() as s:
        for row in s.execute(stmt.execution_options(yield_per=chunk)):
            out = row._asdict()
            out["uuid"] = str(out["uuid"])
            out["inspected_at"] = out["inspected_at"].isoformat()
            yield out
