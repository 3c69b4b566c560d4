"""Probability maps to candidates, and recipe thresholds to the verdict, as table tests."""

from __future__ import annotations

import numpy as np
import pytest

from aoi.errors import InferenceError
from aoi.recipe import find_recipe, load_recipe
from aoi.types import DEFECT_CLASSES, ClassMaps, Defects, GroundTruth, Verdict
from aoi.vision.contested import BLOCK, windows
from aoi.vision.postprocess import Postprocessor, one_class_per_defect
from aoi.vision.preprocess import Tile
from aoi.vision.verdict import Candidates, VerdictRules, decide, split

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
    assert len(found) == 1
    d = found[0]
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
    assert len(found) == 1, "the same defect seen by two tiles is reported once"
    assert found[0].bbox_xyxy_px == (232, 40, 247, 47)


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
    recipe = _recipe(**changes)
    found = split(
        VerdictRules.of(recipe),
        Postprocessor(recipe).run(_probs(160, 160, [blob]), FULL, (640, 640)),
    )
    assert (len(found.defects), len(found.review)) == (n_defects, n_review)


def test_output_of_the_wrong_shape_is_an_inference_error() -> None:
    with pytest.raises(
        InferenceError, match=r"model output must be \[1, 7, H/S, W/S\], got \[1, 5, 8, 8\]"
    ):
        Postprocessor(BASE).run(np.zeros((1, 5, 8, 8), np.float32), FULL, (640, 640))
    with pytest.raises(InferenceError, match="one integer stride"):
        Postprocessor(BASE).run(np.zeros((1, 7, 100, 160), np.float32), FULL, (640, 640))


def _candidates(*rows: tuple[str, float]) -> Defects:
    """Candidates (class name, score), each a 4x4 px box at its own place."""
    return Defects(
        np.array([[8 * i, 0, 8 * i + 3, 3] for i in range(len(rows))], np.int64).reshape(-1, 4),
        np.array([DEFECT_CLASSES.index(name) + 1 for name, _ in rows], np.int64),
        np.array([score for _, score in rows], np.float32),
        np.full(len(rows), 16, np.int64),
    )


# Recipe thresholds -> verdict, through the split and the rules. The base recipe has every class
# at score 0.5 with a review band from 0.35, action ng, ng_min_defects 1, review_max_defects 50.
@pytest.mark.parametrize(
    ("candidates", "changes", "expected"),
    [
        pytest.param([], {}, (Verdict.OK, 0, 0), id="nothing"),
        pytest.param([("open", 0.9)], {}, (Verdict.NG, 1, 0), id="one defect"),
        pytest.param([("open", 0.5)], {}, (Verdict.NG, 1, 0), id="at the score is a defect"),
        pytest.param([("open", 0.4)], {}, (Verdict.REVIEW, 0, 1), id="in the review band"),
        pytest.param([("open", 0.35)], {}, (Verdict.REVIEW, 0, 1), id="at the review floor"),
        pytest.param([("open", 0.3)], {}, (Verdict.OK, 0, 0), id="below the review floor"),
        pytest.param(
            [("open", 0.4)],
            {"classes__open__review_score": None},
            (Verdict.OK, 0, 0),
            id="no review band",
        ),
        pytest.param(
            [("open", 0.6)],
            {"classes__open__score": 0.7},
            (Verdict.REVIEW, 0, 1),
            id="a class's own score",
        ),
        pytest.param(
            [("short", 0.6)],
            {"classes__open__score": 0.7},
            (Verdict.NG, 1, 0),
            id="another class's score does not apply",
        ),
        pytest.param(
            [("open", 0.9)],
            {"classes__open__action": "ignore"},
            (Verdict.OK, 0, 0),
            id="ignored class",
        ),
        pytest.param(
            [("pin_hole", 0.9)],
            {"classes__pin_hole__action": "review"},
            (Verdict.REVIEW, 1, 0),
            id="review class",
        ),
        pytest.param(
            [("open", 0.9), ("pin_hole", 0.9)],
            {"classes__pin_hole__action": "review"},
            (Verdict.NG, 2, 0),
            id="ng class beside a review class",
        ),
        pytest.param(
            [("open", 0.9)],
            {"verdict__ng_min_defects": 2},
            (Verdict.REVIEW, 1, 0),
            id="below ng_min_defects",
        ),
        pytest.param(
            [("open", 0.9), ("short", 0.8)],
            {"verdict__ng_min_defects": 2},
            (Verdict.NG, 2, 0),
            id="at ng_min_defects",
        ),
        pytest.param(
            [("open", 0.9), ("short", 0.4)],
            {"verdict__ng_min_defects": 2},
            (Verdict.REVIEW, 1, 1),
            id="review-band candidates do not count towards NG",
        ),
        pytest.param(
            [("open", 0.9)] * 4,
            {"verdict__review_max_defects": 3},
            (Verdict.REVIEW, 4, 0),
            id="a flood of defects",
        ),
    ],
)
def test_recipe_thresholds_to_verdict(
    candidates: list[tuple[str, float]],
    changes: dict[str, object],
    expected: tuple[Verdict, int, int],
) -> None:
    recipe = _recipe(**changes)
    found = split(VerdictRules.of(recipe), _candidates(*candidates))
    decision = decide(VerdictRules.of(recipe), found)
    assert (decision.verdict, len(found.defects), len(found.review)) == expected
    assert decision.reason


def test_split_keeps_rows_whole_and_in_order() -> None:
    """Each side of the split keeps its candidates' boxes, areas and scores, in input order."""
    candidates = _candidates(("short", 0.9), ("open", 0.4), ("spur", 0.7), ("open", 0.2))
    found = split(VerdictRules.of(BASE), candidates)
    assert found.defects == candidates[np.array([0, 2])]
    assert found.review == candidates[np.array([1])]
    assert decide(VerdictRules.of(BASE), found).reason == "2 defect(s), worst short 0.90"


def test_nothing_found_is_ok() -> None:
    assert decide(VerdictRules.of(BASE), Candidates.none()).verdict is Verdict.OK


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


@pytest.mark.parametrize("seed", range(10))
def test_reading_only_contested_cells_changes_nothing(seed: int) -> None:
    """Random softmax maps with blobs of every class (touching ones of different classes share
    one blob of the first pass), near-ties with the background included; full and class maps."""
    rng = np.random.default_rng(seed)
    h, w = 96, 128
    logits = rng.normal(0, 1, (1, 7, h, w)).astype(np.float32)
    logits[0, 0] += 4.0  # background everywhere ...
    for _ in range(int(rng.integers(0, 8 if seed < 6 else 40))):  # ... but for blobs
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
    got = sorted((d.class_id, d.bbox_xyxy_px, round(d.score, 6)) for d in found)
    assert got == _reference(recipe, probs, 4)
    reduced = ClassMaps(probs.argmax(axis=1).astype(np.uint8), probs.max(axis=1))
    found = Postprocessor(recipe).run(reduced, tile, (h * 4, w * 4))
    assert sorted((d.class_id, d.bbox_xyxy_px, round(d.score, 6)) for d in found) == got
    if seed == 0:
        empty = _probs(h, w, [])
        assert Postprocessor(recipe).run(empty, tile, (h * 4, w * 4)) == Defects.empty()
        lone = empty.copy()  # nothing but a class winning with the background just under half
        lone[0, :, 40:44, 60:64] = np.array([0.49, 0.0, 0.0, 0.5, 0.0, 0.01, 0.0])[:, None, None]
        found = split(
            VerdictRules.of(recipe), Postprocessor(recipe).run(lone, tile, (h * 4, w * 4))
        )
        assert [(d.class_id, d.bbox_xyxy_px) for d in found.defects] == [(3, (240, 160, 255, 175))]


def test_a_blob_inside_another_windows_box_is_found_once_and_blocks_do_not_cut_components() -> None:
    """An L of one class across blocks (one window whose box is most of the map) and a small
    blob of another class inside that box but in a block group of its own: each found once,
    whole, as the cell-by-cell reference finds them; full and class maps."""
    assert BLOCK == 16
    blobs = [
        (1, 5, 5, 46, 8, 0.9),  # the L's arm along row 5-7, blocks (0,0)-(0,2)
        (1, 40, 5, 43, 46, 0.9),  # its leg down column 40-42, blocks (0,2)-(2,2)
        (4, 10, 35, 13, 38, 0.8),  # block (2,0): not 8-connected to the L's blocks
        (2, 62, 70, 68, 73, 0.7),  # across the edge of blocks (4,3) and (4,4)
    ]
    probs = _probs(96, 96, blobs)
    recipe = _recipe(**{f"classes__{n}__review_score": 0.2 for n in DEFECT_CLASSES})
    tile = [Tile(0, 0, 384, 384, (0, 0, 384, 384))]
    found = Postprocessor(recipe).run(probs, tile, (384, 384))
    got = sorted((d.class_id, d.bbox_xyxy_px, round(d.score, 6)) for d in found)
    assert got == _reference(recipe, probs, 4)
    assert [c for c, _, _ in got] == [1, 2, 4]  # the L whole, and each blob once
    reduced = ClassMaps(probs.argmax(axis=1).astype(np.uint8), probs.max(axis=1))
    found = Postprocessor(recipe).run(reduced, tile, (384, 384))
    assert sorted((d.class_id, d.bbox_xyxy_px, round(d.score, 6)) for d in found) == got


def test_one_defect_called_twice_keeps_its_higher_score_when_the_recipe_says_so() -> None:
    """A spur (0.95) with a short (0.7) inside it is one defect: the short goes. A short elsewhere
    stays, and so does a second spur whose box holds the first's (the rule is about classes)."""
    blobs = [
        (4, 10, 10, 20, 20, 0.95),  # spur
        (2, 14, 14, 18, 18, 0.7),  # short inside the spur's box
        (2, 60, 60, 64, 64, 0.8),  # short elsewhere
        (4, 21, 5, 22, 22, 0.9),  # an L of spur around the first, one background cell apart:
        (4, 5, 21, 22, 22, 0.9),  # its box holds the first spur's box
    ]
    probs = _probs(160, 160, blobs)
    plain = Postprocessor(BASE).run(probs, FULL, (640, 640))
    one = Postprocessor(_recipe(model__one_defect_overlap=0.5)).run(probs, FULL, (640, 640))
    assert sorted(d.class_name for d in plain) == ["short", "short", "spur", "spur"]
    kept = sorted((d.class_name, d.bbox_xyxy_px) for d in one)
    assert kept == [
        ("short", (240, 240, 255, 255)),
        ("spur", (20, 20, 87, 87)),
        ("spur", (40, 40, 79, 79)),
    ]
    assert one_class_per_defect(plain, 1.0) == one  # the short lies wholly inside the spur


def test_windows_too_small_for_any_kept_component_are_not_read_and_nothing_is_lost() -> None:
    """min_area 16 px at stride 2: a component needs 4 cells. Stray single cells make no window;
    4 cells meeting at the corner of four blocks (one group) are still found, 3 are not; the
    result is the cell-by-cell reference's."""

    blobs = [
        (3, 15, 15, 17, 17, 0.9),  # 2x2 cells across blocks (0,0), (0,1), (1,0), (1,1)
        (5, 70, 40, 73, 41, 0.9),  # 3 cells in a row: one short of the area
        (2, 50, 90, 51, 91, 0.9),  # stray single cells
        (4, 100, 5, 101, 6, 0.9),
        (1, 5, 110, 6, 111, 0.9),
    ]
    probs = _probs(128, 128, blobs)
    recipe = _recipe(
        **{f"classes__{n}__min_area_px": 16 for n in DEFECT_CLASSES},
        **{f"classes__{n}__review_score": 0.2 for n in DEFECT_CLASSES},
    )
    reduced = ClassMaps(probs.argmax(axis=1).astype(np.uint8), probs.max(axis=1))
    assert len(windows(reduced, 0)) == 5  # every contested cell makes a window ...
    kept = windows(reduced, 0, 4)
    assert [(r0, c0) for r0, c0, *_ in kept] == [(0, 0)]  # ... but only one can hold a defect
    tile = [Tile(0, 0, 256, 256, (0, 0, 256, 256))]
    for maps in (probs, reduced):
        found = Postprocessor(recipe).run(maps, tile, (256, 256))
        got = sorted((d.class_id, d.bbox_xyxy_px, round(d.score, 6)) for d in found)
        assert got == _reference(recipe, probs, 2) == [(3, (30, 30, 33, 33), 0.9)]
