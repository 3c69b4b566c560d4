"""Tests of the synthetic bare-PCB generator: layouts, rendering, recovery, defects, motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.sources.synthetic import boardgen
from aoi.types import GroundTruth


@pytest.fixture(scope="module")
def layouts() -> dict[int, np.ndarray]:
    return {seed: boardgen.make_copper_layout(320, 400, seed) for seed in range(3)}


def parts(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.view(np.uint8), connectivity=8)[0] - 1


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# --- layout -----------------------------------------------------------------------------------


def test_layout_is_deterministic_by_seed() -> None:
    a = boardgen.make_copper_layout(200, 240, 7)
    assert np.array_equal(a, boardgen.make_copper_layout(200, 240, 7))
    assert not np.array_equal(a, boardgen.make_copper_layout(200, 240, 8))


@pytest.mark.parametrize(
    ("height", "width"), [(16, 16), (17, 31), (33, 640), (640, 33), (481, 641), (120, 1000)]
)
def test_layout_any_size(height: int, width: int) -> None:
    mask = boardgen.make_copper_layout(height, width, 3)
    assert mask.shape == (height, width)
    assert mask.dtype == np.bool_


@pytest.mark.parametrize("seed", range(5))
def test_layout_density_like_deeppcb(seed: int) -> None:
    # DeepPCB templates carry roughly 10-30 % copper.
    density = boardgen.make_copper_layout(640, 640, seed).mean()
    assert 0.06 < density < 0.45


@pytest.mark.parametrize("seed", range(3))
def test_layout_keeps_clearance_between_conductors(seed: int) -> None:
    mask = boardgen.make_copper_layout(400, 400, seed)
    # Growing every conductor by 2 px merges none of them when the spacing is >= 6 px.
    grown = cv2.dilate(mask.view(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    assert parts(grown.astype(bool)) == parts(mask)


@pytest.mark.parametrize(
    ("height", "width"), [(15, 640), (640, 15), (0, 0)]
)
def test_layout_rejects_tiny_sizes(height: int, width: int) -> None:
    with pytest.raises(ValueError, match="at least 16x16"):
        boardgen.make_copper_layout(height, width, 0)


@pytest.mark.slow
def test_full_panel_frame_has_copper_and_defects_inside_it() -> None:
    # The panel recipe's 4096x3000 frame end to end; its generation time is a figure in
    # docs/benchmarks.md, not a test.
    h, w = 3000, 4096
    mask = boardgen.make_copper_layout(h, w, 1)
    assert mask.shape == (h, w) and mask.dtype == np.bool_
    assert 0.06 < mask.mean() < 0.45, "copper as dense as on a 640x640 board"
    new, truth = boardgen.inject_defects(mask, np.random.default_rng(1), 6)
    assert truth.class_ids.size == 6
    boxes = truth.bbox_xyxy_px
    assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] < w).all()
    assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] < h).all()
    changed = new != mask
    for x0, y0, x1, y1 in boxes:
        assert changed[y0:y1 + 1, x0:x1 + 1].any(), "each defect changes copper in its box"
    image = boardgen.render(new, "grey", np.random.default_rng(1))
    assert image.shape == (h, w) and image.dtype == np.uint8
    # Copper renders darker than the substrate over the whole panel.
    assert np.median(image[new]) < np.median(image[~new])


# --- render and recovery ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("look", "copper_range", "substrate_range"),
    [("binary", (0, 40), (215, 255)), ("grey", (40, 140), (110, 220))],
)
def test_render_levels(look: boardgen.Look, copper_range: tuple[int, int],
                       substrate_range: tuple[int, int], layouts: dict[int, np.ndarray]) -> None:
    mask = layouts[0]
    image = boardgen.render(mask, look, np.random.default_rng(0))
    assert image.dtype == np.uint8
    assert image.shape == mask.shape
    core = cv2.erode(mask.view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    open_ = cv2.erode((~mask).view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    # Copper is darker than the substrate, as in DeepPCB.
    assert copper_range[0] <= np.median(image[core]) <= copper_range[1]
    assert substrate_range[0] <= np.median(image[open_]) <= substrate_range[1]


def test_render_is_deterministic_by_rng(layouts: dict[int, np.ndarray]) -> None:
    a = boardgen.render(layouts[1], "grey", np.random.default_rng(5))
    assert np.array_equal(a, boardgen.render(layouts[1], "grey", np.random.default_rng(5)))
    assert not np.array_equal(a, boardgen.render(layouts[1], "grey", np.random.default_rng(6)))


def test_grey_noise_follows_sigma() -> None:
    blank = np.zeros((200, 200), bool)
    quiet = boardgen.render(blank, "grey", np.random.default_rng(0), noise_sigma=0.0)
    noisy = boardgen.render(blank, "grey", np.random.default_rng(0), noise_sigma=8.0)
    residual = noisy.astype(float) - quiet.astype(float)
    assert 6.0 < residual.std() < 10.0


@pytest.mark.parametrize("look", ["binary", "grey"])
@pytest.mark.parametrize("seed", range(3))
def test_copper_from_image_round_trip(look: boardgen.Look, seed: int,
                                      layouts: dict[int, np.ndarray]) -> None:
    mask = layouts[seed]
    image = boardgen.render(mask, look, np.random.default_rng(seed + 10))
    assert iou(boardgen.copper_from_image(image), mask) > 0.97


def test_copper_from_image_of_blank_board_is_empty() -> None:
    image = boardgen.render(np.zeros((64, 64), bool), "grey", np.random.default_rng(0))
    assert not boardgen.copper_from_image(image).any()


def test_copper_from_real_deeppcb_template(deeppcb_dir: Path) -> None:
    path = next((deeppcb_dir / "PCBData").glob("group*/*/*_temp.jpg"))
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert iou(boardgen.copper_from_image(image), image < 128) > 0.97


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: boardgen.render(m, "colour", np.random.default_rng()), "look"),  # type: ignore[arg-type]
        (lambda m: boardgen.render(m, "grey", np.random.default_rng(), -1.0), "noise_sigma"),
        (lambda m: boardgen.render(m.astype(np.uint8), "grey", np.random.default_rng()), "bool"),
        (lambda m: boardgen.inject_defects(m, np.random.default_rng(), -1), "count"),
        (lambda m: boardgen.inject_defects(m, np.random.default_rng(), 1, [0]), "classes"),
        (lambda m: boardgen.inject_defects(m, np.random.default_rng(), 1, [7]), "classes"),
        (lambda m: boardgen.misalign(m.view(np.uint8), np.random.default_rng(), -1, 0), ">= 0"),
    ],
)
def test_bad_arguments_raise(call: object, match: str, layouts: dict[int, np.ndarray]) -> None:
    with pytest.raises(ValueError, match=match):
        call(layouts[0])  # type: ignore[operator]


# --- defects ----------------------------------------------------------------------------------


def global_counts(mask: np.ndarray) -> tuple[int, int]:
    return parts(mask), parts(~mask)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("class_id", "adds", "removes"),
    [(1, False, True), (2, True, False), (3, False, True), (4, True, False), (5, True, False),
     (6, False, True)],
)
def test_each_defect_class(class_id: int, adds: bool, removes: bool, seed: int,
                           layouts: dict[int, np.ndarray]) -> None:
    golden = layouts[seed]
    before = golden.copy()
    new, truth = boardgen.inject_defects(golden, np.random.default_rng(seed), 1, [class_id])
    assert np.array_equal(golden, before), "the input mask must not be modified"
    assert truth.class_ids.tolist() == [class_id]
    x0, y0, x1, y1 = truth.bbox_xyxy_px[0].tolist()
    h, w = golden.shape
    assert 0 <= x0 <= x1 < w
    assert 0 <= y0 <= y1 < h
    ys, xs = np.nonzero(new != golden)
    assert ys.size >= 3
    # Every change lies in the box, and the box is tight: 2 px margin unless clipped.
    assert x0 <= xs.min() and xs.max() <= x1 and y0 <= ys.min() and ys.max() <= y1
    assert x0 == max(xs.min() - 2, 0) and x1 == min(xs.max() + 2, w - 1)
    assert y0 == max(ys.min() - 2, 0) and y1 == min(ys.max() + 2, h - 1)
    assert bool((new & ~golden).any()) == adds
    assert bool((golden & ~new).any()) == removes

    copper_before, holes_before = global_counts(golden)
    copper_after, holes_after = global_counts(new)
    if class_id == 1:  # open: the trace falls apart around the cut
        win = np.s_[max(y0 - 30, 0):y1 + 31, max(x0 - 30, 0):x1 + 31]
        assert parts(new[win]) > parts(golden[win])
    elif class_id == 2:  # short: two conductors become one
        assert copper_after == copper_before - 1
    elif class_id == 5:  # spurious copper: a new island
        assert copper_after == copper_before + 1
        assert holes_after == holes_before
    elif class_id == 6:  # pin-hole: a new enclosed hole, nothing disconnected
        assert holes_after == holes_before + 1
        assert copper_after == copper_before
    else:  # mousebite and spur change the outline only
        assert (copper_after, holes_after) == (copper_before, holes_before)


@pytest.mark.parametrize("count", [0, 1, 5, 10])
def test_defects_count_and_no_overlap(count: int, layouts: dict[int, np.ndarray]) -> None:
    new, truth = boardgen.inject_defects(layouts[2], np.random.default_rng(count), count)
    assert isinstance(truth, GroundTruth)
    assert truth.class_ids.size == count
    assert set(truth.class_ids.tolist()) <= set(range(1, 7))
    if count == 0:
        assert np.array_equal(new, layouts[2])
    boxes = truth.bbox_xyxy_px
    for i in range(count):
        for j in range(i + 1, count):
            a, b = boxes[i], boxes[j]
            overlap = a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]
            assert not overlap, f"boxes {a} and {b} overlap"


def test_default_classes_cover_all_six(layouts: dict[int, np.ndarray]) -> None:
    seen = set()
    for k in range(6):
        seen |= set(boardgen.inject_defects(layouts[k % 3], np.random.default_rng(k), 10)[1]
                    .class_ids.tolist())
    assert seen == set(range(1, 7))


@pytest.mark.parametrize(
    ("classes", "expected"),
    [([6], []), ([1, 2, 3, 4, 6], []), (None, [5, 5, 5]), ([6, 5], [5, 5, 5])],
)
def test_blank_board_gives_what_fits(classes: list[int] | None, expected: list[int]) -> None:
    # On a board with no copper only spurious copper has a site; the rest must not loop forever.
    blank = np.zeros((120, 120), bool)
    _, truth = boardgen.inject_defects(blank, np.random.default_rng(0), 3, classes)
    assert truth.class_ids.tolist() == expected


# --- motion and the whole board under test ----------------------------------------------------


@pytest.mark.parametrize(("shift", "rotation"), [(0.0, 0.0), (3.0, 1.0), (10.0, 3.0)])
def test_misalign_matrix_undoes_the_motion(shift: float, rotation: float) -> None:
    template = boardgen.golden_board(240, 320, 4, "binary")
    frame, matrix = boardgen.misalign(template, np.random.default_rng(1), shift, rotation)
    assert matrix.shape == (2, 3)
    assert matrix.dtype == np.float32
    assert frame.dtype == np.uint8
    expected = cv2.warpAffine(template, matrix, (320, 240), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    assert np.array_equal(frame, expected)
    back = cv2.warpAffine(frame, cv2.invertAffineTransform(matrix), (320, 240),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    interior = np.s_[30:-30, 30:-30]
    diff = np.abs(back[interior].astype(float) - template[interior].astype(float))
    assert diff.mean() < 6.0
    # The motion itself is real: the frame does not match the template unless it is zero.
    moved = np.abs(frame[interior].astype(float) - template[interior].astype(float)).mean()
    assert (moved > diff.mean()) == (shift > 0)


def test_golden_board_is_deterministic() -> None:
    a = boardgen.golden_board(100, 130, 9, "grey")
    assert a.dtype == np.uint8
    assert np.array_equal(a, boardgen.golden_board(100, 130, 9, "grey"))


@pytest.mark.parametrize("look", ["binary", "grey"])
def test_board_under_test_truth_is_in_template_coordinates(look: boardgen.Look) -> None:
    template = boardgen.golden_board(320, 400, 11, look)
    image, truth, matrix = boardgen.board_under_test(
        template, np.random.default_rng(3), look=look, defect_count=4, max_shift_px=4.0,
        max_rotation_deg=1.5, noise_sigma=4.0)
    assert image.shape == template.shape
    assert truth.class_ids.size == 4
    back = cv2.warpAffine(image, cv2.invertAffineTransform(matrix), (400, 320),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    changed = boardgen.copper_from_image(back) != boardgen.copper_from_image(template)
    for x0, y0, x1, y1 in truth.bbox_xyxy_px:
        assert changed[y0:y1 + 1, x0:x1 + 1].sum() >= 2, "each defect shows up in its box"


def test_board_under_test_without_defects() -> None:
    template = boardgen.golden_board(200, 200, 2, "grey")
    image, truth, _ = boardgen.board_under_test(
        template, np.random.default_rng(0), look="grey", defect_count=0, max_shift_px=0.0,
        max_rotation_deg=0.0, noise_sigma=4.0)
    assert not truth.is_defective
    assert iou(boardgen.copper_from_image(image), boardgen.copper_from_image(template)) > 0.97
