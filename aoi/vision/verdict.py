"""From recipe thresholds to the verdict: which candidates are defects, then OK / NG / REVIEW.

:func:`split` reads each class's thresholds: a candidate scoring at least its class's ``score``
is a defect; one in ``[review_score, score)`` only goes to review; anything lower, or of a class
whose action is ``ignore``, is dropped. :func:`decide` then applies the verdict rules to what
the split kept.

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

import numpy as np

from aoi.recipe import Recipe
from aoi.types import DEFECT_CLASSES, Defects, Verdict


@dataclass(frozen=True)
class Candidates:
    """A board's candidates after the split: defects (``defects``) and the review band."""

    defects: Defects
    review: Defects

    @classmethod
    def none(cls) -> Candidates:
        """Nothing found (a failed cycle, or a clean board)."""
        return cls(Defects.empty(), Defects.empty())


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class VerdictRules:
    """A recipe's thresholds and verdict rules as tables indexed by class id (0 unused).

    Built once per recipe (the pipeline holds one), so the cycle reads arrays instead of the
    recipe's per-class settings on every board.
    """

    #: The defect score per class; inf drops the class (action ``ignore``).
    score: np.ndarray
    #: The review band's floor per class (the score itself where the class has no band).
    floor: np.ndarray
    #: Classes whose action is ``ng``.
    ng_class: np.ndarray
    ng_min_defects: int
    review_max_defects: int

    @classmethod
    def of(cls, recipe: Recipe) -> VerdictRules:
        n = len(DEFECT_CLASSES) + 1
        score = np.full(n, np.inf, np.float32)
        floor = score.copy()
        ng_class = np.zeros(n, bool)
        for cid, name in enumerate(DEFECT_CLASSES, start=1):
            rule = recipe.rule_for(name)
            ng_class[cid] = rule.action == "ng"
            if rule.action == "ignore":
                continue
            score[cid] = rule.score
            floor[cid] = rule.score if rule.review_score is None else rule.review_score
        for table in (score, floor, ng_class):
            table.setflags(write=False)
        v = recipe.verdict
        return cls(score, floor, ng_class, v.ng_min_defects, v.review_max_defects)


def split(rules: VerdictRules, candidates: Defects) -> Candidates:
    """Which candidates are defects and which only go to review, by each class's thresholds.

    Scores and thresholds compare in float32, the network's own precision (and the one the
    postprocessor's review floor is applied at), so a candidate at a threshold stays on its side.
    """
    if not len(candidates):
        return Candidates(candidates, candidates)  # the usual board: nothing to split
    s = candidates.scores.astype(np.float32)
    c = candidates.class_ids
    called = s >= rules.score[c]
    band = ~called & (s >= rules.floor[c])
    return Candidates(candidates[called], candidates[band])


def decide(rules: VerdictRules, found: Candidates) -> Decision:
    """Apply the recipe's verdict rules to the defects found on one board."""
    n = len(found.defects)
    if n > rules.review_max_defects:
        return Decision(
            Verdict.REVIEW,
            f"{n} defects exceed review_max_defects={rules.review_max_defects}: check the image",
        )
    if not n and not len(found.review):
        return _NO_DEFECT  # the usual board
    ng = found.defects[rules.ng_class[found.defects.class_ids]]
    worst = ng.top()
    if worst is not None and len(ng) >= rules.ng_min_defects:
        return Decision(
            Verdict.NG, f"{len(ng)} defect(s), worst {worst.class_name} {worst.score:.2f}"
        )
    if found.defects:
        return Decision(Verdict.REVIEW, f"{n} defect(s) below the NG rule")
    best = found.review.top()
    if best is not None:
        return Decision(
            Verdict.REVIEW,
            f"{len(found.review)} candidate(s) in the review band, top {best.class_name}",
        )
    return _NO_DEFECT


_NO_DEFECT = Decision(Verdict.OK, "no defect")
