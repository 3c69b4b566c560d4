"""What a shift counted before the station started: verdicts, boards over budget, per recipe.

The shift panel's counters start from here after a restart, so "over budget this shift" and the
per-recipe yields have the same basis as the shift's board count (one query, one window).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Integer, func, select

from aoi.storage.db import Database
from aoi.storage.tables import Inspection
from aoi.storage.window import Window
from aoi.types import Verdict


@dataclass(frozen=True)
class ShiftSoFar:
    """Boards of a window by verdict, how many went over the cycle budget, and per recipe."""

    counts: dict[Verdict, int] = field(default_factory=dict)
    over_budget: int = 0
    #: Recipe name: (boards, OK boards).
    by_recipe: dict[str, tuple[int, int]] = field(default_factory=dict)


def shift_so_far(db: Database, window: Window) -> ShiftSoFar:
    """Count the window's inspections (raises the database's error)."""
    stmt = (
        select(
            Inspection.recipe_name,
            Inspection.verdict,
            func.count(),
            func.sum(func.cast(Inspection.over_budget, Integer)),
        )
        .where(*window.clauses())
        .group_by(Inspection.recipe_name, Inspection.verdict)
    )
    counts: dict[Verdict, int] = defaultdict(int)
    recipes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    over = 0
    with db.session() as s:
        for recipe, verdict, n, n_over in s.execute(stmt):
            v = Verdict[verdict]
            counts[v] += n
            over += int(n_over or 0)
            recipes[recipe][0] += n
            recipes[recipe][1] += n if v is Verdict.OK else 0
    return ShiftSoFar(dict(counts), over, {k: (b, ok) for k, (b, ok) in recipes.items()})
