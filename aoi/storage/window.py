"""Which inspections a query looks at."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement

from aoi.storage.tables import Inspection


@dataclass(frozen=True)
class Window:
    """Which inspections a query looks at: a time range (UTC-aware) and optional filters."""

    since: datetime
    until: datetime | None = None
    recipe: str | None = None
    station_id: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        out = [Inspection.inspected_at >= self.since]
        if self.until is not None:
            out.append(Inspection.inspected_at < self.until)
        if self.recipe:
            out.append(Inspection.recipe_name == self.recipe)
        if self.station_id:
            out.append(Inspection.station_id == self.station_id)
        return out
