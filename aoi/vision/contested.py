"""Where a defect class can win a cell: the windows of a map postprocessing reads.

A frame's map is mostly background; postprocessing (:mod:`aoi.vision.postprocess`) reads only
the windows around the cells a defect class can win, found by blocks, so its cost follows the
defect area, not the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from aoi.types import ClassMaps

__all__ = ["BLOCK", "windows"]

#: A background probability at or above which no defect class can win a cell's argmax: half the
#: softmax mass, plus float32 rounding of the sum.
_BACKGROUND_WINS = 0.5 + 1e-4

#: One window of a tile's map: its row and column offsets, the winning class per cell, the
#: winning class's probability per cell (float32), and which of its cells are its own (None:
#: every one, the box holding no other window's block).
_Window = tuple[int, int, np.ndarray, np.ndarray, np.ndarray | None]

#: The side of the blocks in which contested cells are looked for (cells of the map).
BLOCK = 16


def windows(maps: np.ndarray | ClassMaps, i: int, fewest: int = 1) -> list[_Window]:
    """The windows of tile ``i``'s map around the cells a defect class can win (none: none can).

    Full maps: where the background holds half the mass or more no defect class can win the
    argmax (ties go to class 0 too); class maps: cells whose class is not background. Blocks of
    ``BLOCK`` x ``BLOCK`` cells holding such a cell are found by ORing each block's rows as
    8-byte words (:func:`_blocks`); each 8-connected group of blocks is one window, its own
    cells those of its blocks. Cells 8-connected in the map lie in the same or 8-connected
    blocks, so a connected component lies in one window whole, and the cost follows the defect
    area, not the frame. Only the windows are read (full maps: argmax'd; float16 scores:
    widened). A window whose box holds fewer than ``fewest`` contested cells (the smallest
    component any class keeps) is not read: a stray cell costs a count, not a window. A window
    whose box holds no other window's block owns all its cells (``own`` None).
    """
    if isinstance(maps, ClassMaps):
        contested = maps.classes[i]
    else:
        contested = (maps[i, 0] < _BACKGROUND_WINS).view(np.uint8)
    if not cv2.hasNonZero(contested):
        return []  # the usual board: nothing contested anywhere (one pass, no blocks)
    h, w = contested.shape
    blocks = _blocks(contested)
    n, groups, boxes, _ = cv2.connectedComponentsWithStats(blocks.view(np.uint8), connectivity=8)
    out = []
    for g, (bx, by, bw, bh, area) in enumerate(boxes.tolist()):
        if g == 0:
            continue
        r0, c0 = by * BLOCK, bx * BLOCK
        r1, c1 = min((by + bh) * BLOCK, h), min((bx + bw) * BLOCK, w)
        if fewest > 1 and cv2.countNonZero(contested[r0:r1, c0:c1]) < fewest:
            continue  # the box may hold other groups' cells too: an upper bound, so exact
        own = None
        # Cells outside every group's blocks are uncontested, so no class keeps them: only
        # another group's blocks inside the box need masking out.
        if n > 2 and cv2.countNonZero(groups[by : by + bh, bx : bx + bw]) != area:
            own = groups[by : by + bh, bx : bx + bw] == g
            own = np.repeat(np.repeat(own, BLOCK, axis=0), BLOCK, axis=1)[: r1 - r0, : c1 - c0]
        if isinstance(maps, ClassMaps):
            # float16 scores compare with the float32 thresholds at float32.
            scores = maps.scores[i, r0:r1, c0:c1].astype(np.float32, copy=False)
            classes = np.ascontiguousarray(maps.classes[i, r0:r1, c0:c1])
            out.append((r0, c0, classes, scores, own))
        else:
            # The winner's probability is the maximum (argmax's ties go to the lower class).
            p = maps[i, :, r0:r1, c0:c1]
            out.append((r0, c0, p.argmax(axis=0), p.max(axis=0), own))
    return out


def _blocks(cells: np.ndarray) -> np.ndarray:
    """Per ``BLOCK`` x ``BLOCK`` block of a uint8 map (the last ones cut by its edges): whether
    it holds a nonzero cell. Rows of 16 cells are ORed as two 8-byte words each."""
    h, w = cells.shape
    nh, nw = -(-h // BLOCK), -(-w // BLOCK)
    if (h, w) != (nh * BLOCK, nw * BLOCK) or not cells.flags.c_contiguous:
        padded = np.zeros((nh * BLOCK, nw * BLOCK), np.uint8)
        padded[:h, :w] = cells
        cells = padded
    words = np.bitwise_or.reduce(cells.view(np.uint64).reshape(nh, BLOCK, 2 * nw), axis=1)
    return (words[:, ::2] | words[:, 1::2]) != 0
