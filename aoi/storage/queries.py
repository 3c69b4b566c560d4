"""What the GUI and ``aoi report`` ask the defect log: yield, Pareto, false calls, cycle times,
lookups, and the writes a person makes (reviews, audit events). The lookups live in
``lookup.py`` and the writes in ``reviews.py``; this module re-exports them, so the GUI imports
everything from here.

Every function takes a :class:`~aoi.storage.db.Database` and returns frozen dataclasses. Counts
are made by the database (grouped by UTC hour, so shifts and local hours are rolled up here
without a second query); cycle-time percentiles are computed here from the one column.

Definitions, as a quality engineer reads them:
- first-pass yield (FPY) of a group = OK boards / boards inspected (REVIEW and ERROR count as not
  passed);
- false-call rate = called defects an operator rejected (``DefectRejected`` or ``DefectAccepted``)
  / called defects reviewed; a false-call board is an NG board all of whose called defects were
  reviewed and rejected.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

import numpy as np
from sqlalchemy import case, func, select

from aoi.storage.db import Database, hour_key
from aoi.storage.lookup import (
    EXPORT_FIELDS,
    DefectRecord,
    InspectionRecord,
    count_review_queue,
    find_inspections,
    iter_inspections,
    review_queue,
)
from aoi.storage.reviews import (
    AuditRecord,
    ReviewRecord,
    audit_events,
    record_audit,
    record_review,
)
from aoi.storage.tables import FALSE_CALLS, Defect, Inspection, Verification
from aoi.storage.window import Window

__all__ = [
    "EXPORT_FIELDS",
    "AuditRecord",
    "CycleStats",
    "DefectRecord",
    "FalseCallStats",
    "InspectionRecord",
    "ParetoRow",
    "ReviewRecord",
    "Window",
    "YieldRow",
    "audit_events",
    "count_review_queue",
    "cycle_times",
    "defect_pareto",
    "false_calls",
    "find_inspections",
    "iter_inspections",
    "line_answers",
    "record_audit",
    "record_review",
    "review_queue",
    "yield_table",
]

Grouping = Literal["hour", "shift", "recipe", "station"]


def local(t: datetime, tz: tzinfo | None) -> datetime:
    """``t`` in the report's zone (None: the PC's zone, with its daylight saving)."""
    return t.astimezone(tz) if tz is not None else t.astimezone()


# -- yield ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YieldRow:
    group: str
    total: int
    ok: int
    ng: int
    review: int
    error: int

    @property
    def fpy(self) -> float | None:
        return self.ok / self.total if self.total else None


def shift_of(t_local: datetime, shift_starts_h: Sequence[int]) -> str:
    """``YYYY-MM-DD S<n> (HH:00)``: the shift a local time falls in, dated by its start."""
    h = t_local.hour
    index = max((i for i, s in enumerate(shift_starts_h) if s <= h), default=None)
    day = t_local.date()
    if index is None:  # before the first start: the last shift of the day before
        index, day = len(shift_starts_h) - 1, day - timedelta(days=1)
    return f"{day} S{index + 1} ({shift_starts_h[index]:02d}:00)"


def yield_table(
    db: Database,
    window: Window,
    by: Grouping,
    *,
    shift_starts_h: Sequence[int] = (6, 14, 22),
    tz: tzinfo | None = None,
) -> list[YieldRow]:
    """Boards per verdict and first-pass yield per local hour, shift, recipe or station.

    Hours are counted in UTC by the database and shown in ``tz``; with a zone whose offset is
    not a whole hour, a local hour or shift boundary falls inside a counted hour (it goes whole
    to the side its start is on).
    """
    hour = hour_key(Inspection.inspected_at).label("hour")
    stmt = (
        select(
            hour, Inspection.recipe_name, Inspection.station_id, Inspection.verdict, func.count()
        )
        .where(*window.clauses())
        .group_by(hour, Inspection.recipe_name, Inspection.station_id, Inspection.verdict)
    )
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    order: dict[str, datetime] = {}
    with db.session() as s:
        for h, recipe, station, verdict, n in s.execute(stmt):
            start = datetime.strptime(h, "%Y-%m-%d %H").replace(tzinfo=UTC)
            if by == "hour":
                key = f"{local(start, tz):%Y-%m-%d %H}:00"
            elif by == "shift":
                key = shift_of(local(start, tz), shift_starts_h)
            elif by == "recipe":
                key = recipe
            else:
                key = station
            counts[key][verdict] += n
            order[key] = min(order.get(key, start), start)
    keys = (
        sorted(counts, key=lambda k: (order[k], k)) if by in ("hour", "shift") else sorted(counts)
    )
    return [
        YieldRow(
            k,
            sum(counts[k].values()),
            counts[k]["OK"],
            counts[k]["NG"],
            counts[k]["REVIEW"],
            counts[k]["ERROR"],
        )
        for k in keys
    ]


# -- defects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParetoRow:
    class_name: str
    count: int
    share: float
    cumulative: float
    confirmed: int
    false_calls: int
    not_verified: int


def defect_pareto(db: Database, window: Window, *, band: str = "defect") -> list[ParetoRow]:
    """Defects per class, most frequent first, with shares and review outcomes."""
    stmt = (
        select(Defect.class_name, Defect.review_state, func.count())
        .join(Inspection)
        .where(*window.clauses(), Defect.band == band)
        .group_by(Defect.class_name, Defect.review_state)
    )
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with db.session() as s:
        for name, state, n in s.execute(stmt):
            per[name][state] += n
    totals = {k: sum(v.values()) for k, v in per.items()}
    grand = sum(totals.values())
    rows, running = [], 0
    for name in sorted(totals, key=lambda k: (-totals[k], k)):
        running += totals[name]
        states = per[name]
        rows.append(
            ParetoRow(
                name,
                totals[name],
                totals[name] / grand,
                running / grand,
                states[Verification.CONFIRMED],
                sum(states[v] for v in FALSE_CALLS),
                states[Verification.NOT_VERIFIED],
            )
        )
    return rows


@dataclass(frozen=True)
class FalseCallStats:
    reviewed: int
    confirmed: int
    false_calls: int
    #: class name -> (reviewed, false calls)
    by_class: dict[str, tuple[int, int]]
    ng_boards_reviewed: int
    false_call_boards: int

    @property
    def rate(self) -> float | None:
        return self.false_calls / self.reviewed if self.reviewed else None

    @property
    def board_rate(self) -> float | None:
        return self.false_call_boards / self.ng_boards_reviewed if self.ng_boards_reviewed else None


def false_calls(db: Database, window: Window) -> FalseCallStats:
    """False-call rate of called defects, per class, and of fully reviewed NG boards."""
    pareto = defect_pareto(db, window)
    by_class = {r.class_name: (r.confirmed + r.false_calls, r.false_calls) for r in pareto}
    reviewed = case((Defect.review_state != Verification.NOT_VERIFIED.value, 1), else_=0)
    rejected = case((Defect.review_state.in_([v.value for v in FALSE_CALLS]), 1), else_=0)
    per_board = (
        select(
            func.count().label("n"),
            func.sum(reviewed).label("reviewed"),
            func.sum(rejected).label("rejected"),
        )
        .join(Inspection)
        .where(*window.clauses(), Inspection.verdict == "NG", Defect.band == "defect")
        .group_by(Defect.inspection_uuid)
        .subquery()
    )
    stmt = select(
        func.count(),
        func.coalesce(func.sum(case((per_board.c.rejected == per_board.c.n, 1), else_=0)), 0),
    ).where(per_board.c.reviewed == per_board.c.n)
    with db.session() as s:
        boards, fc_boards = s.execute(stmt).one()
    return FalseCallStats(
        reviewed=sum(r.confirmed + r.false_calls for r in pareto),
        confirmed=sum(r.confirmed for r in pareto),
        false_calls=sum(r.false_calls for r in pareto),
        by_class=by_class,
        ng_boards_reviewed=int(boards),
        false_call_boards=int(fc_boards),
    )


# -- cycle time -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CycleStats:
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    over_budget: int
    #: (from ms, to ms, boards); the last bin is open-ended.
    histogram: tuple[tuple[float, float, int], ...] = field(default=())


def cycle_times(db: Database, window: Window, *, bin_ms: float = 5.0, bins: int = 20) -> CycleStats:
    """Distribution of the whole cycle (boards that had a frame; camera timeouts excluded)."""
    stmt = select(Inspection.cycle_ms, Inspection.over_budget).where(
        *window.clauses(), Inspection.frame_id >= 0
    )
    with db.session() as s:
        rows = s.execute(stmt).all()
    if not rows:
        return CycleStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    ms = np.fromiter((r[0] for r in rows), dtype=np.float64, count=len(rows))
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    edges = np.arange(bins + 1) * bin_ms
    idx = np.minimum((ms // bin_ms).astype(np.int64), bins - 1)
    n = np.bincount(idx, minlength=bins)
    hist = tuple(
        (float(edges[i]), float(edges[i + 1]) if i < bins - 1 else float("inf"), int(n[i]))
        for i in range(bins)
    )
    return CycleStats(
        count=len(rows),
        p50_ms=round(float(p50), 3),
        p90_ms=round(float(p90), 3),
        p99_ms=round(float(p99), 3),
        max_ms=round(float(ms.max()), 3),
        mean_ms=round(float(ms.mean()), 3),
        over_budget=sum(1 for r in rows if r[1]),
        histogram=hist,
    )


@dataclass(frozen=True)
class LineAnswers:
    """What the line was told, beside what the station inspected, over a window."""

    #: Boards by the verdict the line received ("" key: no PLC answer recorded).
    received: dict[str, int]
    #: Boards inspected OK, NG or REVIEW that the line received as ERROR, by the link fault.
    overridden: dict[str, int]


def line_answers(db: Database, window: Window) -> LineAnswers:
    """The verdicts the line received, and the link faults that overrode an inspection's."""
    stmt = (
        select(Inspection.verdict, Inspection.line_verdict, Inspection.line_error, func.count())
        .where(*window.clauses())
        .group_by(Inspection.verdict, Inspection.line_verdict, Inspection.line_error)
    )
    received: dict[str, int] = defaultdict(int)
    overridden: dict[str, int] = defaultdict(int)
    with db.session() as s:
        for verdict, line, fault, n in s.execute(stmt):
            received[line or ""] += n
            if line is not None and line != verdict:
                overridden[fault or "?"] += n
    return LineAnswers(dict(received), dict(overridden))
