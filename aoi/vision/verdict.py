"""Verdict rules: the recipe turns a board's defects into OK / NG / REVIEW.

ERROR is not decided here: it comes from a stage that failed (frame, registration, inference),
and the cycle sets it before these rules run.

Order of the rules, first match wins:

1. more defects than ``verdict.review_max_defects``: REVIEW (a flood of calls usually means a bad
   image or a wrong product, which a person should look at before the board is scrapped);
2. at least ``verdict.ng_min_defects`` defects of classes whose action is ``ng``: NG;
3. any reported defect (an ``ng`` class below the NG count, or a ``review`` class), or any
   candidate in a class's review band: REVIEW;
4. otherwise OK.
"""

from __future__ import annotations

from dataclasses import dataclass

from aoi.recipe import Recipe
from aoi.types import Verdict
from aoi.vision.postprocess import Candidates


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


def decide(recipe: Recipe, found: Candidates) -> Decision:
    """Apply the recipe's verdict rules to the defects found on one board."""
    rules = recipe.verdict
    n = len(found.defects)
    if n > rules.review_max_defects:
        return Decision(
            Verdict.REVIEW,
            f"{n} defects exceed review_max_defects={rules.review_max_defects}: check the image",
        )
    ng = [d for d in found.defects if recipe.rule_for(d.class_name).action == "ng"]
    if len(ng) >= rules.ng_min_defects:
        worst = max(ng, key=lambda d: d.score)
        return Decision(
            Verdict.NG, f"{len(ng)} defect(s), worst {worst.class_name} {worst.score:.2f}"
        )
    if found.defects:
        return Decision(Verdict.REVIEW, f"{n} defect(s) below the NG rule")
    if found.review:
        best = found.review[0]
        return Decision(
            Verdict.REVIEW,
            f"{len(found.review)} candidate(s) in the review band, top {best.class_name}",
        )
    return Decision(Verdict.OK, "no defect")
