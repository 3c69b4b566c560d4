"""The operators' review decisions, read back in order for the plant outbox.

A review is written by the GUI straight into the database (aoi/storage/reviews.py: the person
waits for the answer), not through the journal. Journaling it as well would put a second write
on the GUI's thread and a second copy to keep consistent; the ``reviews`` table is already an
append-only log with an increasing id, so the outbox reads it from its own acknowledged review
id instead (its thread, never the GUI's). Only reviews of this station's inspections are read:
a fleet's central database holds every station's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from aoi.storage.db import Database
from aoi.storage.tables import Defect, Inspection, Review


class ReviewFeed:
    """Reviews of one station's defects, by increasing id."""

    def __init__(self, db: Database, station_id: str) -> None:
        self.db = db
        self.station_id = station_id

    def last_id(self) -> int:
        """The newest review's id (0: none): a new publisher publishes reviews from there on."""
        with self.db.session() as s:
            return int(s.scalar(select(func.max(Review.id))) or 0)

    def after(self, review_id: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` reviews newer than ``review_id``, oldest first, as plain dicts."""
        query = (
            select(Review, Defect, Inspection)
            .join(Defect, Review.defect_id == Defect.id)
            .join(Inspection, Defect.inspection_uuid == Inspection.uuid)
            .where(Review.id > review_id, Inspection.station_id == self.station_id)
            .order_by(Review.id)
            .limit(limit)
        )
        out = []
        with self.db.session() as s:
            for review, defect, insp in s.execute(query).all():
                # The defect's place in its band, as the inspection record lists it (the CFX
                # defect identifier of UnitsInspected is made from it).
                index = s.scalar(
                    select(func.count(Defect.id)).where(
                        Defect.inspection_uuid == defect.inspection_uuid,
                        Defect.band == defect.band,
                        Defect.id < defect.id,
                    )
                )
                out.append(
                    {
                        "review_id": review.id,
                        "ts": review.reviewed_at.timestamp(),
                        "reviewer": review.reviewer,
                        "decision": review.decision,
                        "comment": review.comment,
                        "defect_id": defect.id,
                        "band": defect.band,
                        "defect_index": int(index or 0),
                        "class_name": defect.class_name,
                        "bbox_xyxy_px": [defect.x0_px, defect.y0_px, defect.x1_px, defect.y1_px],
                        "area_px": defect.area_px,
                        "score": defect.score,
                        "inspection_uuid": str(insp.uuid),
                        "inspection_id": insp.inspection_id,
                        "serial": insp.serial,
                        "part_sequence": insp.part_sequence,
                        "recipe_name": insp.recipe_name,
                        "recipe_hash": insp.recipe_hash,
                        "inspection_ts": insp.inspected_at.timestamp(),
                        "image_path": insp.image_path,
                    }
                )
        return out
