"""Two neighbouring defects painted as one component (aoi/vision/boxsplit.py, recipe key
``[model] split_merged``): split corner to corner, never a box, a step or an irregular blob."""

from __future__ import annotations

import numpy as np
import pytest
from test_postprocess_verdict import FULL, _probs, _recipe

from aoi.types import ClassMaps
from aoi.vision.boxsplit import _best_split, _corner_split, could_split, split_cells
from aoi.vision.postprocess import Postprocessor

#: DeepPCB's smallest defect at stride 2 (min_area_px 256): 64 cells, so boxes of 8 cells a side.
MIN_CELLS = 64


def _union(*boxes: tuple[int, int, int, int], shape: tuple[int, int] = (40, 40)) -> np.ndarray:
    """A mask of filled boxes (row0, col0, row1, col1 exclusive)."""
    m = np.zeros(shape, bool)
    for r0, c0, r1, c1 in boxes:
        m[r0:r1, c0:c1] = True
    return m


def _box_and_triangle() -> np.ndarray:
    """A full box at the top right and a triangle of cells at the bottom left: two boxes cover
    it at 0.77, but the triangle fills its own box at 0.72 (one irregular defect's paint, as
    DeepPCB 20085221's open was)."""
    m = _union((0, 10, 12, 30), shape=(30, 30))
    m[10:30, 0:14] |= np.tri(20, 14, 1, dtype=bool)
    return m


def _boxes(parts: list) -> set[tuple[int, int, int, int]]:
    return {(y, x, y + h, x + w) for y, x, h, w, _ in parts}


def test_two_boxes_meeting_corner_to_corner_are_two_parts_with_their_own_boxes() -> None:
    """The shape of DeepPCB 20085023's two opens, which the network painted as one."""
    top_right, bottom_left = (0, 12, 18, 30), (13, 0, 30, 18)
    mask = _union(top_right, bottom_left)
    assert mask.sum() < 0.75 * 30 * 30  # the merged component fills 0.64 of its box
    parts = split_cells(mask, 0.75, MIN_CELLS)
    assert _boxes(parts) == {top_right, bottom_left}
    assert sum(int(p[4].sum()) for p in parts) == mask.sum()  # every cell in one part
    flipped = split_cells(mask[:, ::-1], 0.75, MIN_CELLS)  # the other diagonal
    assert _boxes(flipped) == {(0, 10, 18, 28), (13, 22, 30, 40)}


@pytest.mark.parametrize(
    ("name", "mask"),
    [
        ("a box", _union((5, 5, 30, 25))),
        ("a step of a few cells: boxes side by side", _union((0, 0, 20, 15), (4, 15, 30, 30))),
        ("boxes offset by a few cells one way", _union((0, 0, 16, 20), (16, 4, 30, 26))),
        ("corner boxes smaller than a defect", _union((0, 6, 7, 13), (5, 0, 12, 7))),
        ("an irregular blob", np.tri(30, 30, dtype=bool) | np.tri(30, 30, -12, dtype=bool).T),
        ("a box and a triangle corner to corner", _box_and_triangle()),
    ],
)
def test_what_is_one_defect_stays_whole(name: str, mask: np.ndarray) -> None:
    parts = split_cells(mask, 0.75, MIN_CELLS)
    assert len(parts) == 1, name
    assert int(parts[0][4].sum()) == int(mask.sum()), name


def test_the_search_equals_trying_every_first_box() -> None:
    """``_corner_split`` finds each candidate's second box from prefix extents; here every first
    box's outside cells are listed one by one instead, on masks of two random boxes with holes."""
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(8, 24, 2))
        cells = np.zeros((h, w), bool)
        for _box in range(2):
            r0, c0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
            cells[r0 : rng.integers(r0 + 2, h + 1), c0 : rng.integers(c0 + 2, w + 1)] = True
        cells &= rng.random((h, w)) < 0.95
        if not cells.any():
            continue
        side = 2
        best = None
        for i in range(h - 1):
            for j in range(w - 1):
                inside = np.zeros_like(cells)
                inside[: i + 1, : j + 1] = True
                out = cells & ~inside
                n_in, n_out = int((cells & inside).sum()), int(out.sum())
                if n_out < side * side or n_in < side * side:
                    continue
                rows, cols = np.nonzero(out)
                r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
                if min(r0, c0, i + 1, j + 1, h - 1 - i, w - 1 - j) < side:
                    continue
                if min(r1 - r0 + 1, c1 - c0 + 1) < side:
                    continue
                both = max(min(i, r1) - r0 + 1, 0) * max(min(j, c1) - c0 + 1, 0)
                union = (i + 1) * (j + 1) + (r1 - r0 + 1) * (c1 - c0 + 1) - both
                best = union if best is None else min(best, union)
        got = _corner_split(cells, side * side)
        assert (got[0] if got else None) == best
        checked += best is not None
    assert checked > 100  # most masks had a candidate: the comparison was not vacuous


def test_the_recipe_key_splits_a_merged_component_into_two_defects() -> None:
    # Two spurs (class 4) at stride 4, corner to corner: cells (rows 10-27, cols 22-39) and
    # (rows 23-39, cols 10-27), one component; board-a-640's spur min_area_px is the floor.
    probs = _probs(160, 160, [(4, 22, 10, 40, 28, 0.97), (4, 10, 23, 28, 40, 0.95)])
    plain = Postprocessor(_recipe()).run(probs, FULL, (640, 640))
    split = _recipe(model__split_merged={"fill": 0.75, "max_px": 120})
    two = Postprocessor(split).run(probs, FULL, (640, 640))
    assert [d.bbox_xyxy_px for d in plain] == [(40, 40, 159, 159)]
    assert sorted((d.bbox_xyxy_px, round(d.score, 6)) for d in two) == [
        ((40, 92, 111, 159), pytest.approx(0.95)),
        ((88, 40, 159, 111), pytest.approx(0.97)),
    ]
    assert sum(d.area_px for d in two) == plain[0].area_px
    reduced = ClassMaps(probs.argmax(axis=1).astype(np.uint8), probs.max(axis=1))
    assert Postprocessor(split).run(reduced, FULL, (640, 640)) == two  # reduced maps alike
    # A component longer than max_px is one defect (DeepPCB's 138x106 px pin-holes).
    big = _recipe(model__split_merged={"fill": 0.75, "max_px": 100})
    assert Postprocessor(big).run(probs, FULL, (640, 640)) == plain


def test_the_corner_test_only_skips_what_the_search_would_not_split() -> None:
    """``could_split`` is False only where no corner's search finds a cover: on random masks of
    two boxes (some corner to corner, some side by side, some one box), with holes."""
    rng = np.random.default_rng(11)
    skipped = searched = 0
    for _ in range(600):
        h, w = (int(v) for v in rng.integers(6, 30, 2))
        cells = np.zeros((h, w), bool)
        for _box in range(int(rng.integers(1, 3))):
            r0, c0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
            cells[r0 : rng.integers(r0 + 2, h + 1), c0 : rng.integers(c0 + 2, w + 1)] = True
        cells &= rng.random((h, w)) < 0.9
        if not cells.any():
            continue
        rows, cols = np.nonzero(cells)
        cells = cells[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        for min_cells in (4, 9, 16):
            if could_split(cells, min_cells):
                searched += _best_split(cells, min_cells) is not None
            else:
                skipped += 1
                assert _best_split(cells, min_cells) is None
    assert skipped > 1000 and searched > 50  # both branches, and covers found, were exercised
