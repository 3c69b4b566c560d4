"""Probability maps to defects, and the recipe's verdict rules, as table tests."""

from __future__ import annotations

import numpy as np
import pytest

from aoi.errors import InferenceError
from aoi.recipe import find_recipe, load_recipe
from aoi.types import DEFECT_CLASSES, Defect, GroundTruth, Verdict
from aoi.vision.postprocess import Candidates, Postprocessor
from aoi.vision.preprocess import Tile
from aoi.vision.verdict import decide

BASE = load_recipe(find_recipe("board-a-640"), check_files=False).recipe


def _recipe(**changes: object):
    raw = BASE.model_dump()
    for dotted, value in changes.items():
        node = raw
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return type(BASE).model_validate(raw)


def _probs(h: int, w: int, blobs: list[tuple[int, int, int, int, int, float]]) -> np.ndarray:
    """[1, 7, h, w] maps: background 1 except the blobs (class, x0, y0, x1, y1, prob)."""
    p = np.zeros((1, 7, h, w), np.float32)
    p[0, 0] = 1.0
    for cid, x0, y0, x1, y1, prob in blobs:
        p[0, :, y0:y1, x0:x1] = (1 - prob) / 6
        p[0, 0, y0:y1, x0:x1] = 1 - prob - (1 - prob) * 5 / 6
        p[0, cid, y0:y1, x0:x1] = prob
    return p


FULL = [Tile(0, 0, 640, 640, (0, 0, 640, 640))]


def test_component_becomes_a_box_in_frame_pixels() -> None:
    probs = _probs(160, 160, [(2, 10, 20, 13, 22, 0.9)])
    found = Postprocessor(BASE).run(probs, FULL, (640, 640))
    assert len(found.defects) == 1
    d = found.defects[0]
    assert d.class_name == "short"
    assert d.bbox_xyxy_px == (40, 80, 51, 87)
    assert d.area_px == 6 * 16
    assert d.score == pytest.approx(0.9)


def test_tile_origin_shifts_boxes_and_seams_do_not_double_count() -> None:
    tiles = [Tile(0, 0, 256, 256, (0, 0, 240, 256)), Tile(224, 0, 256, 256, (240, 0, 480, 256))]
    p = np.concatenate(
        [_probs(64, 64, [(5, 58, 10, 62, 12, 0.8)]), _probs(64, 64, [(5, 2, 10, 6, 12, 0.8)])]
    )
    found = Postprocessor(BASE).run(p, tiles, (256, 256))
    assert len(found.defects) == 1, "the same defect seen by two tiles is reported once"
    assert found.defects[0].bbox_xyxy_px == (232, 40, 247, 47)


@pytest.mark.parametrize(
    ("blob", "changes", "n_defects", "n_review"),
    [
        ((4, 0, 0, 2, 2, 0.9), {}, 1, 0),
        ((4, 0, 0, 2, 2, 0.4), {}, 0, 1),  # in the review band [0.35, 0.5)
        ((4, 0, 0, 2, 2, 0.2), {}, 0, 0),  # below every threshold
        ((4, 0, 0, 1, 1, 0.9), {"classes__spur__min_area_px": 32}, 0, 0),  # too small
        ((4, 0, 0, 2, 2, 0.9), {"classes__spur__action": "ignore"}, 0, 0),
        ((4, 0, 0, 2, 2, 0.9), {"masks": [{"x0": 0, "y0": 0, "x1": 20, "y1": 20}]}, 0, 0),
        ((4, 50, 50, 52, 52, 0.9), {"masks": [{"x0": 0, "y0": 0, "x1": 20, "y1": 20}]}, 1, 0),
    ],
)
def test_thresholds_area_actions_and_masks(
    blob: tuple[int, int, int, int, int, float],
    changes: dict[str, object],
    n_defects: int,
    n_review: int,
) -> None:
    found = Postprocessor(_recipe(**changes)).run(_probs(160, 160, [blob]), FULL, (640, 640))
    assert (len(found.defects), len(found.review)) == (n_defects, n_review)


def test_output_of_the_wrong_shape_is_an_inference_error() -> None:
    with pytest.raises(
        InferenceError, match=r"model output must be \[1, 7, H/S, W/S\], got \[1, 5, 8, 8\]"
    ):
        Postprocessor(BASE).run(np.zeros((1, 5, 8, 8), np.float32), FULL, (640, 640))
    with pytest.raises(InferenceError, match="one integer stride"):
        Postprocessor(BASE).run(np.zeros((1, 7, 100, 160), np.float32), FULL, (640, 640))


def _d(name: str, score: float = 0.9) -> Defect:
    return Defect(DEFECT_CLASSES.index(name) + 1, name, (0, 0, 4, 4), 16, score)


@pytest.mark.parametrize(
    ("defects", "review", "changes", "expected"),
    [
        ([], [], {}, Verdict.OK),
        ([_d("open")], [], {}, Verdict.NG),
        ([], [_d("open", 0.4)], {}, Verdict.REVIEW),
        ([_d("pin_hole")], [], {"classes__pin_hole__action": "review"}, Verdict.REVIEW),
        ([_d("open"), _d("pin_hole")], [], {"classes__pin_hole__action": "review"}, Verdict.NG),
        ([_d("open")], [], {"verdict__ng_min_defects": 2}, Verdict.REVIEW),
        ([_d("open"), _d("short")], [], {"verdict__ng_min_defects": 2}, Verdict.NG),
        ([_d("open")] * 4, [], {"verdict__review_max_defects": 3}, Verdict.REVIEW),
    ],
)
def test_verdict_rules(
    defects: list[Defect], review: list[Defect], changes: dict[str, object], expected: Verdict
) -> None:
    decision = decide(_recipe(**changes), Candidates(tuple(defects), tuple(review)))
    assert decision.verdict is expected
    assert decision.reason


def test_truth_inside_a_dont_care_region_is_not_expected() -> None:
    recipe = _recipe(masks=[{"x0": 0, "y0": 0, "x1": 100, "y1": 100}])
    truth = GroundTruth(np.array([[10, 10, 20, 20], [200, 200, 210, 210]]), np.array([1, 2]))
    visible = Postprocessor(recipe).visible_truth(truth)
    assert visible.class_ids.tolist() == [2]
    assert Postprocessor(BASE).visible_truth(truth) is truth


def _reference(recipe: object, probs: np.ndarray, stride: int) -> list[tuple[object, ...]]:
    """Every cell read, no window: the definition the fast path must reproduce exactly."""
    import cv2

    post = Postprocessor(recipe)  # type: ignore[arg-type]
    out = []
    for p in probs:
        winner = p.argmax(axis=0)
        for cid in post._active:
            mask = ((winner == cid) & (p[cid] >= post._low[cid])).astype(np.uint8)
            count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for k in range(1, count):
                x, y, w, h, cells = (int(v) for v in stats[k])
                if cells * stride * stride < post._min_area[cid]:
                    continue
                box = (x * stride, y * stride, (x + w) * stride - 1, (y + h) * stride - 1)
                out.append((cid, box, round(float(p[cid][labels == k].max()), 6)))
    return sorted(out)


@pytest.mark.parametrize("seed", range(6))
def test_reading_only_contested_cells_changes_nothing(seed: int) -> None:
    """Random softmax maps with blobs of every class, near-ties with the background included."""
    rng = np.random.default_rng(seed)
    h, w = 96, 128
    logits = rng.normal(0, 1, (1, 7, h, w)).astype(np.float32)
    logits[0, 0] += 4.0  # background everywhere ...
    for _ in range(int(rng.integers(0, 8))):  # ... but for blobs
        cid = int(rng.integers(1, 7))
        y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        logits[0, cid, y : y + int(rng.integers(2, 8)), x : x + int(rng.integers(2, 8))] += 6.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    recipe = _recipe(**{f"classes__{n}__review_score": 0.2 for n in DEFECT_CLASSES})
    recipe = (
        _recipe(**{f"classes__{n}__min_area_px": 4 for n in DEFECT_CLASSES}) if seed % 2 else recipe
    )
    tile = [Tile(0, 0, w * 4, h * 4, (0, 0, w * 4, h * 4))]
    found = Postprocessor(recipe).run(probs, tile, (h * 4, w * 4))
    got = sorted(
        (d.class_id, d.bbox_xyxy_px, round(d.score, 6)) for d in found.defects + found.review
    )
    assert got == _reference(recipe, probs, 4)
    if seed == 0:
        empty = _probs(h, w, [])
        assert Postprocessor(recipe).run(empty, tile, (h * 4, w * 4)) == Candidates((), ())
        lone = empty.copy()  # nothing but a class winning with the background just under half
        lone[0, :, 40:44, 60:64] = np.array([0.49, 0.0, 0.0, 0.5, 0.0, 0.01, 0.0])[:, None, None]
        found = Postprocessor(recipe).run(lone, tile, (h * 4, w * 4))
        assert [(d.class_id, d.bbox_xyxy_px) for d in found.defects] == [(3, (240, 160, 255, 175))]
