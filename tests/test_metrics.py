"""Detection metrics on small sets with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from aoi.metrics import ImageDetections, class_curve, evaluate, iou_matrix, operating_point
from aoi.types import Defects, GroundTruth

NAMES = {1: "open", 2: "short"}
THR = {1: 0.5, 2: 0.5}


def _img(
    truth: list[tuple[int, int, int, int, int]],
    dets: list[tuple[int, int, int, int, int, float]],
    name: str = "img",
) -> ImageDetections:
    tb = np.array([t[:4] for t in truth], int).reshape(-1, 4)
    tc = np.array([t[4] for t in truth], int)
    db = np.array([d[:4] for d in dets], int).reshape(-1, 4)
    dc = np.array([d[4] for d in dets], int)
    ds = np.array([d[5] for d in dets], float)
    areas = (db[:, 2] - db[:, 0] + 1) * (db[:, 3] - db[:, 1] + 1)
    return ImageDetections(name, GroundTruth(tb, tc), Defects(db, dc, ds, areas))


TRUTH = [(10, 10, 29, 29, 1), (50, 50, 69, 59, 2), (100, 10, 119, 29, 1)]


def _perfect() -> list[ImageDetections]:
    return [_img(TRUTH, [(*t[:4], t[4], 0.9) for t in TRUTH]) for _ in range(3)]


def test_iou() -> None:
    a = np.array([[0, 0, 9, 9]])
    b = np.array([[0, 0, 9, 9], [5, 0, 14, 9], [20, 20, 29, 29]])
    assert iou_matrix(a, b).round(4).tolist() == [[1.0, round(50 / 150, 4), 0.0]]
    # Corners are inclusive: boxes sharing one pixel column overlap, by 10 of 190 px.
    touching = iou_matrix(np.array([[0, 0, 9, 9]]), np.array([[9, 0, 18, 9]]))
    assert touching.tolist() == [[10 / 190]]
    assert iou_matrix(b, np.zeros((0, 4), int)).shape == (3, 0)


def test_perfect_detector_scores_one() -> None:
    report = evaluate(_perfect(), NAMES, THR).as_json()
    assert report["map33"] == report["ap50"] == report["map50_95"] == 1.0
    assert report["precision"] == report["recall"] == report["f_score"] == 1.0
    assert report["images"] == 3
    assert report["per_class"]["open"]["truth"] == 6


@pytest.mark.parametrize(
    ("shift", "map33_is_one", "ap50_is_one"),
    [(0, True, True), (4, True, True), (8, True, False), (14, False, False)],
)
def test_shifted_detector_scores_less_as_the_shift_grows(
    shift: int, map33_is_one: bool, ap50_is_one: bool
) -> None:
    # 20 px wide boxes shifted by s: IoU = (20 - s) / (20 + s), > 0.33 for s < 10, >= 0.5 for s <= 6
    imgs = [_img(TRUTH, [(x0 + shift, y0, x1 + shift, y1, c, 0.9) for x0, y0, x1, y1, c in TRUTH])]
    r = evaluate(imgs, NAMES, THR).as_json()
    assert (r["map33"] == 1.0) is map33_is_one
    assert (r["ap50"] == 1.0) is ap50_is_one
    assert r["map50_95"] <= r["ap50"] <= r["map33"]
    if shift:
        assert r["map50_95"] < 1.0


def test_false_positive_below_threshold_does_not_count_at_the_operating_point() -> None:
    dets = [(*t[:4], t[4], 0.9) for t in TRUTH] + [(200, 200, 210, 210, 1, 0.3)]
    img = [_img(TRUTH, dets)]
    point = operating_point(img, THR, 0.33)
    assert (point.tp, point.fp, point.fn) == (3, 0, 0)
    point = operating_point(img, {1: 0.2, 2: 0.2}, 0.33)
    assert (point.tp, point.fp, point.fn) == (3, 1, 0)
    # A false positive scored below every true one leaves AP at 1.0.
    assert evaluate(img, NAMES, THR).as_json()["map33"] == 1.0


def test_high_scoring_false_positive_lowers_ap() -> None:
    dets = [(*t[:4], t[4], 0.6) for t in TRUTH] + [(200, 200, 210, 210, 1, 0.95)]
    curve = class_curve([_img(TRUTH, dets)], 1, 0.33)
    # Ranked FP, TP, TP over 2 truths: precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> AP 2/3.
    assert curve.ap == pytest.approx(2 / 3)


def test_wrong_class_is_a_miss_and_a_false_positive() -> None:
    dets = [(10, 10, 29, 29, 2, 0.9)]
    point = operating_point([_img(TRUTH[:1], dets)], THR, 0.33)
    assert (point.tp, point.fp, point.fn) == (0, 1, 1)
    assert point.f_score == 0.0


def test_one_detection_matches_one_truth() -> None:
    dets = [(10, 10, 29, 29, 1, 0.9), (11, 11, 30, 30, 1, 0.8)]
    point = operating_point([_img(TRUTH[:1], dets)], THR, 0.33)
    assert (point.tp, point.fp, point.fn) == (1, 1, 0)


def test_operating_point_comes_from_the_deployed_pass_when_given() -> None:
    """The curve pass may merge two defects into one component that the deployed pass (higher
    review floor) keeps apart: AP reads the first, P/R/F the second."""
    curve = [_img(TRUTH, [(10, 10, 119, 29, 1, 0.95), (50, 50, 69, 59, 2, 0.9)])]
    deployed = [_img(TRUTH, [(*t[:4], t[4], 0.9) for t in TRUTH])]
    merged = evaluate(curve, NAMES, THR).as_json()
    assert (merged["precision"], merged["recall"]) == (0.5, round(1 / 3, 4))
    split = evaluate(curve, NAMES, THR, deployed=deployed).as_json()
    assert split["precision"] == split["recall"] == split["f_score"] == 1.0
    assert split["map33"] == merged["map33"] < 1.0
