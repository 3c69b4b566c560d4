"""models.evaluate: held-out figures through the station's own postprocessing and verdict."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # models/ is a folder of scripts, not an installed package

from models.evaluate import EvalSpec, eval_recipe, evaluate, held_out_boards  # noqa: E402

STRIDE = 4
SIZE = 128
SPEC = EvalSpec(seed=4200)
COUNT = 8


def _oracle(paint: Callable[[int], int] | None) -> Callable[[np.ndarray], np.ndarray]:
    """A predictor that knows each held-out board's truth (looked up by its template) and paints
    each truth box with class ``paint(class_id)`` at probability 0.9; None paints nothing."""
    truths = {
        template.tobytes(): truth
        for _, template, truth in held_out_boards(COUNT, SIZE, SPEC.look, SPEC.seed)
    }

    def predict(pair: np.ndarray) -> np.ndarray:
        h, w = pair.shape[2] // STRIDE, pair.shape[3] // STRIDE
        probs = np.zeros((1, 7, h, w), np.float32)
        probs[0, 0] = 1.0
        truth = truths[pair[0, 1].tobytes()]
        for (x0, y0, x1, y1), cid in zip(truth.bbox_xyxy_px, truth.class_ids, strict=True):
            cells = np.s_[y0 // STRIDE : y1 // STRIDE + 1, x0 // STRIDE : x1 // STRIDE + 1]
            if paint is not None:
                probs[0, :, cells[0], cells[1]] = 0.1 / 6
                probs[0, paint(int(cid)), cells[0], cells[1]] = 0.9
        return probs

    return predict


@pytest.mark.parametrize(
    ("paint", "accuracy", "recall", "located", "false_calls"),
    [
        pytest.param(lambda c: c, 1.0, 1.0, 1.0, 0, id="perfect"),
        pytest.param(lambda c: c % 6 + 1, 1.0, 0.0, 1.0, 0, id="right place, wrong class"),
        pytest.param(None, 0.5, 0.0, 0.0, 0, id="blind"),
    ],
)
def test_figures_follow_what_the_model_sees(
    paint: Callable[[int], int] | None,
    accuracy: float,
    recall: float,
    located: float,
    false_calls: int,
) -> None:
    result = evaluate(_oracle(paint), SPEC, COUNT, SIZE, SPEC.look)
    truth = sum(r["truth"] for r in result["recall_per_class"].values())
    assert truth > COUNT // 2, "the defective boards carry defects"
    assert result["board_accuracy"] == accuracy
    assert result["recall_all"] == recall
    assert result["false_call_boards"] == false_calls
    assert result["escaped_ng_boards"] == (COUNT // 2 if paint is None else 0)
    assert result["stray_components"] == 0
    for r in result["recall_per_class"].values():
        if r["truth"]:
            assert r["located_any_class"] == located


def test_the_recipe_is_the_stations_with_the_model_cards_thresholds() -> None:
    recipe = eval_recipe(EvalSpec(threshold=0.6, min_area_cells=3), stride=8)
    rule = recipe.rule_for("spur")
    assert (rule.score, rule.review_score, rule.min_area_px, rule.action) == (0.6, None, 192, "ng")
    assert recipe.masks == []
