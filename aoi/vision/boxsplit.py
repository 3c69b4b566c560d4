"""Two neighbouring defects the network painted as one component, told apart by their boxes.

The network is trained to fill each defect's box with its class, so one defect is a nearly full
rectangle of cells. Two neighbouring defects of one class that touch become one connected
component shaped like two overlapping rectangles, side by side or corner to corner, and its cells
fill much less of its bounding box than each rectangle does of its own. DeepPCB's annotators box
such defects one by one: 18 of the 24 cross-validation misses whose box was misplaced were two
boxes merged (docs/benchmarks.md, session 9).

:func:`split_cells` covers the cells with two boxes: one anchored at a corner of the component's
box, the other the box of every cell outside the first. Of all anchors and sizes it takes the
pair whose union holds the fewest empty cells, and splits when that union, and each part's
cells their own box, are filled at least ``fill``. Only boxes at opposite corners count (two
rectangles meeting diagonally), each at least a smallest defect's side both ways: a straight cut
or a sliver is what one irregular defect's paint gives as often as two defects do, and an
irregular single defect's parts are no rectangles either. A component that fills its box at
``fill`` already is never split, nor one whose parts would hold fewer than ``min_cells``; each
part is looked at again, ``depth`` splits deep. The search costs O(box) per corner: about 1 ms
for a 30x30-cell component on one core, and only components below ``fill`` whose opposite
corners allow two boxes (:func:`could_split`) are searched.
"""

from __future__ import annotations

import numpy as np

#: A part of a component: its box (row, column, height, width) in the component's mask, and its
#: cells within that box.
Part = tuple[int, int, int, int, np.ndarray]


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _area(mask: np.ndarray) -> int:
    _, _, h, w = _box(mask)
    return h * w


def _after(values: np.ndarray, reduce: np.ufunc, empty: int) -> np.ndarray:
    """Per index k: ``reduce`` over ``values[k + 1:]`` (``empty`` where that is empty)."""
    out = np.full(len(values), empty, np.int64)
    out[:-1] = reduce.accumulate(values[::-1])[::-1][1:]
    return out


def _corner_split(cells: np.ndarray, min_cells: int) -> tuple[int, np.ndarray] | None:
    """The best two-box cover with the first box at the top-left corner: (union area, mask of
    the first box's cells), or None when no cover passes the rules."""
    h, w = cells.shape
    big = 1 << 30
    occ_r, occ_c = cells.any(axis=1), cells.any(axis=0)
    idx_r, idx_c = np.arange(h), np.arange(w)
    # Per row: lowest and highest column holding a cell; per column: lowest and highest row.
    row_lo = np.where(occ_r, cells.argmax(axis=1), big)
    row_hi = np.where(occ_r, w - 1 - cells[:, ::-1].argmax(axis=1), -1)
    col_lo = np.where(occ_c, cells.argmax(axis=0), big)
    col_hi = np.where(occ_c, h - 1 - cells[::-1].argmax(axis=0), -1)
    # The first box is rows 0..i by columns 0..j; the cells outside it lie below row i or right
    # of column j, so their box comes from what lies after i (rows) and after j (columns).
    below_first = _after(np.where(occ_r, idx_r, big), np.minimum, big)[:, None]
    below_last = _after(np.where(occ_r, idx_r, -1), np.maximum, -1)[:, None]
    below_lo = _after(row_lo, np.minimum, big)[:, None]
    below_hi = _after(row_hi, np.maximum, -1)[:, None]
    right_first = _after(np.where(occ_c, idx_c, big), np.minimum, big)[None, :]
    right_last = _after(np.where(occ_c, idx_c, -1), np.maximum, -1)[None, :]
    right_lo = _after(col_lo, np.minimum, big)[None, :]
    right_hi = _after(col_hi, np.maximum, -1)[None, :]
    r0, r1 = np.minimum(below_first, right_lo), np.maximum(below_last, right_hi)
    c0, c1 = np.minimum(right_first, below_lo), np.maximum(right_last, below_hi)
    n_in = cells.cumsum(axis=0).cumsum(axis=1)
    n_out = int(cells.sum()) - n_in
    ii, jj = idx_r[:, None], idx_c[None, :]
    first = (ii + 1) * (jj + 1)
    second = np.maximum(r1 - r0 + 1, 0) * np.maximum(c1 - c0 + 1, 0)
    both = np.maximum(np.minimum(ii, r1) - r0 + 1, 0) * np.maximum(np.minimum(jj, c1) - c0 + 1, 0)
    union = first + second - both
    # Corner to corner only: the second box leaves the first one's corner row and column, and
    # each box, and each of the two corners they leave empty, is at least a smallest defect's
    # side both ways. A straight cut, a sliver, or boxes offset by a few cells one way are what
    # one irregular defect's paint gives as often as two defects do (fold 4 of the
    # cross-validation: 6 of 7 such splits were one defect).
    side = _side(min_cells)
    ok = (n_out >= min_cells) & (n_in >= min_cells) & (r0 >= side) & (c0 >= side)
    ok &= (ii + 1 >= side) & (jj + 1 >= side) & (h - 1 - ii >= side) & (w - 1 - jj >= side)
    ok &= (r1 - r0 + 1 >= side) & (c1 - c0 + 1 >= side)
    if not ok.any():
        return None
    union = np.where(ok, union, big)
    k = int(union.argmin())
    bi, bj = divmod(k, w)
    part = np.zeros_like(cells)
    part[: bi + 1, : bj + 1] = cells[: bi + 1, : bj + 1]
    return int(union.flat[k]), part


def _side(min_cells: int) -> int:
    """A smallest defect's side in cells: each box of a split, and each corner it leaves empty."""
    return max(1, int(np.ceil(np.sqrt(min_cells))))


def could_split(cells: np.ndarray, min_cells: int) -> bool:
    """Whether any two-box cover could pass :func:`_corner_split`'s rules, by a test of a few
    cells. Two boxes at opposite corners leave the other two corners empty, a smallest defect's
    side both ways, so at least one pair of opposite corner blocks must hold no cell (and the
    box must hold two sides both ways). ``False`` means no search can split the cells."""
    h, w = cells.shape
    side = _side(min_cells)
    if h < 2 * side or w < 2 * side:
        return False
    tl, tr = cells[:side, :side].any(), cells[:side, -side:].any()
    bl, br = cells[-side:, :side].any(), cells[-side:, -side:].any()
    return not (tr or bl) or not (tl or br)


def _best_split(cells: np.ndarray, min_cells: int) -> tuple[int, np.ndarray] | None:
    """The best two-box cover over the four corners: (union area, the first box's cells)."""
    best: tuple[int, np.ndarray] | None = None
    for flip_r in (False, True):
        for flip_c in (False, True):
            view = cells[::-1] if flip_r else cells
            view = view[:, ::-1] if flip_c else view
            got = _corner_split(view, min_cells)
            if got is None or (best is not None and got[0] >= best[0]):
                continue
            part = got[1][::-1] if flip_r else got[1]
            best = (got[0], part[:, ::-1] if flip_c else part)
    return best


def split_cells(mask: np.ndarray, fill: float, min_cells: int, depth: int = 2) -> list[Part]:
    """The parts of one component's cells (``mask``, boolean): itself, or, when two boxes cover
    the cells at ``fill`` or better, the parts of each of those two boxes' cells."""
    y, x, h, w = _box(mask)
    cells = mask[y : y + h, x : x + w]
    count = int(cells.sum())
    whole = [(y, x, h, w, cells)]
    if depth <= 0 or count >= fill * h * w or count < 2 * min_cells:
        return whole
    if not could_split(cells, min_cells):
        return whole  # the four-corner search would find nothing (about 1 ms saved)
    got = _best_split(cells, min_cells)
    if got is None or count < fill * got[0]:
        return whole
    first = got[1]
    parts = (first, cells & ~first)
    if any(int(p.sum()) < fill * _area(p) for p in parts):
        return whole  # a part is no box either: one irregular defect, not two
    out: list[Part] = []
    for part in parts:
        for py, px, ph, pw, pcells in split_cells(part, fill, min_cells, depth - 1):
            out.append((y + py, x + px, ph, pw, pcells))
    return out
