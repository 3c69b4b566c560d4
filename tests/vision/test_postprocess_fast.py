"""The postprocessor's short cuts give what the long way gives: no contested cell, one blob of
one class, rows masked and ordered in Python, a few candidates' overlaps compared pair by pair,
nothing to split or decide."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aoi.recipe import find_recipe, load_recipe
from aoi.types import DEFECT_CLASSES, ClassMaps, Defects, Verdict
from aoi.vision import overlap
from aoi.vision.contested import windows
from aoi.vision.postprocess import Postprocessor
from aoi.vision.preprocess import Tile
from aoi.vision.verdict import VerdictRules, decide, split

BASE = load_recipe(find_recipe("board-a-640"), check_files=False).recipe
TILE = [Tile(0, 0, 512, 512, (0, 0, 512, 512))]
HW = (512, 512)


def _recipe(**model: object) -> object:
    raw = BASE.model_dump()
    raw["model"].update(model)
    for name in DEFECT_CLASSES:
        raw["classes"][name]["review_score"] = 0.2
    raw["masks"] = [
        {"x0": 0, "y0": 0, "x1": 96, "y1": 96},
        {"x0": 300, "y0": 0, "x1": 340, "y1": 512},
    ]
    return type(BASE).model_validate(raw)


def _maps(seed: int, h: int = 128, w: int = 128) -> np.ndarray:
    """Random softmax maps [1, 7, h, w]: background but for blobs of every class, some touching
    (one blob of several classes), some weak (contested, not kept)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (1, 7, h, w)).astype(np.float32)
    logits[0, 0] += 4.0
    for _ in range(int(rng.integers(0, 30))):
        cid = int(rng.integers(1, 7))
        y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        size = (int(rng.integers(1, 9)), int(rng.integers(1, 9)))
        logits[0, cid, y : y + size[0], x : x + size[1]] += float(rng.choice([3.5, 6.0, 9.0]))
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def _reduced(probs: np.ndarray, dtype: type = np.float32) -> ClassMaps:
    return ClassMaps(probs.argmax(axis=1).astype(np.uint8), probs.max(axis=1).astype(dtype))


def _same(a: Defects, b: Defects) -> None:
    for name in ("bbox_xyxy_px", "class_ids", "scores", "areas_px"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
        assert not x.flags.writeable


def _reference(recipe: object, probs: np.ndarray, seen: tuple[int, int, int, int] | None) -> list:
    """Every cell of every class read (stride 4, one tile), masked by box centre and ordered by
    score: the rows the postprocessor must give (scores here are all distinct)."""
    post = Postprocessor(recipe)  # type: ignore[arg-type]
    winner, rows = probs[0].argmax(axis=0), []
    for cid in post._active:
        mask = ((winner == cid) & (probs[0, cid] >= post._low[cid])).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for k in range(1, count):
            x, y, w, h, cells = (int(v) for v in stats[k])
            if cells * 16 < post._min_area[cid]:
                continue
            box = (x * 4, y * 4, (x + w) * 4 - 1, (y + h) * 4 - 1)
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            hidden = seen is not None and not (seen[0] <= cx < seen[2] and seen[1] <= cy < seen[3])
            if hidden or any(m.x0 <= cx < m.x1 and m.y0 <= cy < m.y1 for m in post._masks):
                continue
            rows.append((float(probs[0, cid][labels == k].max()), cid, box, cells * 16))
    return [(cid, box, area) for _, cid, box, area in sorted(rows, key=lambda r: -r[0])]


def test_a_board_with_no_contested_cell_gives_no_candidates_and_is_ok() -> None:
    clean = ClassMaps(np.zeros((1, 128, 128), np.uint8), np.ones((1, 128, 128), np.float16))
    assert windows(clean, 0) == []
    found = Postprocessor(_recipe()).run(clean, TILE, HW, (8, 8, 500, 500))
    assert len(found) == 0
    assert [found.bbox_xyxy_px.shape, found.scores.dtype] == [(0, 4), np.float32]
    rules = VerdictRules.of(BASE)
    picked = split(rules, found)
    assert (len(picked.defects), len(picked.review)) == (0, 0)
    assert (decide(rules, picked).verdict, decide(rules, picked).reason) == (
        Verdict.OK,
        "no defect",
    )


def test_contested_cells_below_every_floor_give_no_candidates() -> None:
    classes = np.zeros((1, 128, 128), np.uint8)
    classes[0, 40:50, 40:50] = 3
    weak = ClassMaps(classes, np.full((1, 128, 128), 0.1, np.float32))  # floors are 0.2
    assert len(windows(weak, 0)) == 1
    assert len(Postprocessor(_recipe()).run(weak, TILE, HW)) == 0


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("seen", [None, (20, 30, 480, 470)])
def test_reduced_maps_give_the_full_maps_defects_and_the_reference_rows(
    seed: int, seen: tuple[int, int, int, int] | None
) -> None:
    """Full maps (int64 winners: the general path, one component at a time) and class maps (the
    one-blob short cut) give identical columns and order, masks and seen region applied."""
    recipe = _recipe(one_defect_overlap=0.5 if seed % 2 else None, split_merged=None)
    probs = _maps(seed)
    post = Postprocessor(recipe)
    full = post.run(probs, TILE, HW, seen)
    reduced = post.run(_reduced(probs), TILE, HW, seen)
    _same(full, reduced)
    if seed % 2 == 0:
        got = [(d.class_id, d.bbox_xyxy_px, d.area_px) for d in reduced]
        assert got == _reference(recipe, probs, seen)
    half = post.run(_reduced(probs, np.float16), TILE, HW, seen)
    assert len(half) == len(reduced)  # (scores rounded: the order may differ only on ties)


def test_one_blob_of_two_classes_gives_a_component_of_each() -> None:
    classes = np.zeros((1, 128, 128), np.uint8)
    scores = np.zeros((1, 128, 128), np.float32)
    classes[0, 40:44, 40:44], scores[0, 40:44, 40:44] = 2, 0.9
    classes[0, 44:48, 40:44], scores[0, 44:48, 40:44] = 5, 0.8  # touching: one blob
    found = Postprocessor(_recipe()).run(ClassMaps(classes, scores), TILE, HW)
    assert [(d.class_id, d.bbox_xyxy_px, d.area_px) for d in found] == [
        (2, (160, 160, 175, 175), 256),
        (5, (160, 176, 175, 191), 256),
    ]


def test_a_window_owns_every_cell_unless_another_groups_block_is_in_its_box() -> None:
    classes = np.zeros((1, 96, 96), np.uint8)
    classes[0, 5:8, 5:46] = 1  # an L over blocks (0,0)-(0,2) ...
    classes[0, 5:46, 40:43] = 1  # ... and (0,2)-(2,2)
    maps = ClassMaps(classes, np.ones((1, 96, 96), np.float32))
    assert [w[4] is None for w in windows(maps, 0)] == [True]
    classes[0, 35:38, 10:13] = 4  # block (2,0): a group of its own, inside the L's box
    owns = [w[4] for w in windows(maps, 0)]
    assert owns[0] is not None and not owns[0][35:38, 10:13].any() and owns[1] is None


def test_scores_outside_0_1_are_refused_as_before() -> None:
    classes = np.zeros((1, 128, 128), np.uint8)
    classes[0, 40:44, 40:44] = 2
    maps = ClassMaps(classes, np.full((1, 128, 128), 1.5, np.float32))
    with pytest.raises(ValueError, match=r"Defects\.scores must lie in 0\.\.1"):
        Postprocessor(_recipe()).run(maps, TILE, HW, (0, 0, 8, 8))  # even where not seen


@pytest.mark.parametrize("seed", range(20))
def test_a_few_candidates_pair_by_pair_overlap_as_the_arrays_do(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    xy = rng.integers(0, 60, (n, 2))
    wh = rng.integers(0, 30, (n, 2))
    found = Defects(
        np.concatenate([xy, xy + wh], axis=1),
        rng.integers(1, 4, n),
        np.sort(rng.random(n))[::-1].copy(),
        rng.integers(0, 100, n),
    )
    for share in (0.0, 0.3, 0.5, 1.0):
        arrays = overlap._called_again_arrays(found, share)
        assert overlap._called_again_few(found, share) == arrays.tolist()
        assert np.array_equal(overlap.called_again(found, share), arrays)
