"""The one detection type: Defects and GroundTruth columns, their checks, selection and merge."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import numpy as np
import pytest

from aoi.types import Defect, Defects, GroundTruth


def _defects(
    boxes: object = None, ids: object = None, scores: object = None, areas: object = None
) -> Defects:
    """Three valid defects, any column replaced."""
    return Defects(
        np.array([[0, 0, 9, 9], [20, 5, 29, 14], [40, 0, 40, 0]]) if boxes is None else boxes,  # type: ignore[arg-type]
        np.array([1, 5, 6]) if ids is None else ids,  # type: ignore[arg-type]
        np.array([0.9, 0.4, 0.7]) if scores is None else scores,  # type: ignore[arg-type]
        np.array([100, 30, 1]) if areas is None else areas,  # type: ignore[arg-type]
    )


def _raises(kind: type[Exception], match: str) -> AbstractContextManager[object]:
    return pytest.raises(kind, match=match)


OK = nullcontext()


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        pytest.param({}, OK, id="valid"),
        pytest.param(
            {"boxes": [[0, 0, 9, 9]] * 3},
            _raises(TypeError, r"Defects\.bbox_xyxy_px must be a numpy array, got list"),
            id="not an array",
        ),
        pytest.param(
            {"boxes": np.zeros((3, 4))},
            _raises(ValueError, r"Defects\.bbox_xyxy_px must be integer, got dtype float64"),
            id="float boxes",
        ),
        pytest.param(
            {"boxes": np.zeros((3, 5), int)},
            _raises(ValueError, r"Defects\.bbox_xyxy_px must have shape \(N, 4\), got \(3, 5\)"),
            id="boxes of 5",
        ),
        pytest.param(
            {"ids": np.array([1, 2])},
            _raises(ValueError, r"Defects\.class_ids must have shape \(3,\), got \(2,\)"),
            id="a class id short",
        ),
        pytest.param(
            {"ids": np.array([1, 0, 7])},
            _raises(
                ValueError, r"Defects\.class_ids must lie in 1\.\.6, found 0 at row 1 \(2 bad\)"
            ),
            id="class id out of range",
        ),
        pytest.param(
            {"boxes": np.array([[0, 0, 9, 9], [29, 5, 20, 14], [0, 0, 0, 0]])},
            _raises(ValueError, r"x1 >= x0 and y1 >= y0 in every box, found \[29, 5, 20, 14\]"),
            id="box corners swapped",
        ),
        pytest.param(
            {"scores": np.array([0.9, 1.5, 0.1])},
            _raises(ValueError, r"Defects\.scores must lie in 0\.\.1, found 1\.5 at row 1"),
            id="score above 1",
        ),
        pytest.param(
            {"scores": np.array([0.9, np.nan, 0.1])},
            _raises(ValueError, r"Defects\.scores must lie in 0\.\.1, found nan"),
            id="NaN score",
        ),
        pytest.param(
            {"scores": np.array([1, 0, 1])},
            _raises(ValueError, r"Defects\.scores must be floating-point, got dtype int64"),
            id="integer scores",
        ),
        pytest.param(
            {"areas": np.array([4, -1, 4])},
            _raises(ValueError, r"Defects\.areas_px must be >= 0, found -1 at row 1"),
            id="negative area",
        ),
    ],
)
def test_columns_are_checked_once_with_what_was_expected_and_found(
    columns: dict[str, object], expected: AbstractContextManager[object]
) -> None:
    with expected:
        found = _defects(**columns)  # type: ignore[arg-type]
        assert len(found) == 3


def test_ground_truth_has_boxes_and_classes_only() -> None:
    truth = GroundTruth(np.array([[10, 10, 20, 20]], np.int32), np.array([2], np.int32))
    assert truth.is_defective and truth.class_names == ("short",)
    assert not GroundTruth.empty().is_defective
    with pytest.raises(ValueError, match=r"GroundTruth\.class_ids must lie in 1\.\.6, found 9"):
        GroundTruth(np.array([[10, 10, 20, 20]]), np.array([9]))
    with pytest.raises(TypeError, match="takes 3 positional arguments"):
        GroundTruth(np.zeros((0, 4), int), np.zeros(0, int), np.zeros(0))  # type: ignore[call-arg]


def test_iteration_and_int_index_give_the_per_item_view() -> None:
    found = _defects()
    items = list(found)
    assert items[1] == Defect(5, "spurious_copper", (20, 5, 29, 14), 30, 0.4)
    assert found[-1] == items[2] and found[0] == items[0]
    assert all(type(v) is int for v in (*items[0].bbox_xyxy_px, items[0].area_px))
    assert found.class_names == ("open", "spurious_copper", "pin_hole")
    with pytest.raises(IndexError, match="index 3 out of range for 3 rows"):
        found[3]


def test_mask_index_and_slice_select_rows_as_defects() -> None:
    found = _defects()
    high = found[found.scores >= 0.5]
    assert isinstance(high, Defects) and high.class_ids.tolist() == [1, 6]
    assert found[np.array([2, 0])].areas_px.tolist() == [1, 100]
    assert found[1:].bbox_xyxy_px.tolist() == [[20, 5, 29, 14], [40, 0, 40, 0]]
    assert len(found[np.zeros(3, bool)]) == 0
    with pytest.raises(IndexError, match=r"mask must have shape \(3,\), got \(2,\)"):
        found[np.array([True, False])]


def test_sorting_top_merge_and_empty() -> None:
    found = _defects()
    assert found.sorted_by_score().scores.tolist() == [0.9, 0.7, 0.4]
    assert found.top() == found[0]
    assert Defects.empty().top() is None and len(Defects.empty()) == 0
    both = Defects.merge([found[1:], found[:1]])
    assert both.class_ids.tolist() == [5, 6, 1] and both != found
    assert both.sorted_by_score() == found.sorted_by_score()
    assert Defects.merge([]) == Defects.empty()
    with pytest.raises(TypeError, match=r"Defects\.merge takes Defects only, got GroundTruth"):
        Defects.merge([found, GroundTruth.empty()])  # type: ignore[list-item]


def test_columns_are_read_only_copies() -> None:
    scores = np.array([0.9, 0.4, 0.7])
    found = _defects(scores=scores)
    with pytest.raises(ValueError, match="read-only"):
        found.scores[0] = 0.1
    scores[0] = 0.2  # the caller's array stays writable, and changing it changes nothing found
    assert found.scores[0] == 0.9


def test_from_items_round_trips_the_per_item_view() -> None:
    found = _defects()
    assert Defects.from_items(found) == found
    assert Defects.from_items([]) == Defects.empty()
