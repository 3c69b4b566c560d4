"""``[model] alternates``: each candidate's next most likely reading, ranked by the curves only.

The maps are built by hand, so every score is known; the evaluation part runs the real ONNX
Runtime backend on the CPU with its device reduction, on a synthetic board.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from aoi.app.eval_pass import OnePass
from aoi.errors import AoiError
from aoi.metrics import ImageDetections, class_curve
from aoi.recipe import LoadedRecipe, find_recipe, load_recipe
from aoi.types import DEFECT_CLASSES, ClassMaps, Defects, Frame, GroundTruth
from aoi.vision.postprocess import SECOND_READING, Postprocessor
from aoi.vision.preprocess import Tile

BASE = load_recipe(find_recipe("board-a-640"), check_files=False).recipe
OPEN, SHORT, MOUSEBITE, SPUR = (DEFECT_CLASSES.index(n) + 1 for n in DEFECT_CLASSES[:4])
FULL = [Tile(0, 0, 640, 640, (0, 0, 640, 640))]


def _recipe(floor: float, *, alternates: bool = True, overlap: float | None = None):
    raw = BASE.model_dump()
    raw["model"]["alternates"] = alternates
    raw["model"]["one_defect_overlap"] = overlap
    for name in DEFECT_CLASSES:
        raw["classes"][name]["score"] = 0.9
        raw["classes"][name]["review_score"] = floor
        raw["classes"][name]["min_area_px"] = 16
    return type(BASE).model_validate(raw)


def _maps(cells: list[tuple[int, int, int, int, dict[int, float]]]) -> np.ndarray:
    """[1, 7, 160, 160] softmax maps: background 1 but for rectangles x0, y0, x1, y1 (cells, x1
    and y1 exclusive) of the given class probabilities, the background taking the rest."""
    p = np.zeros((1, 7, 160, 160), np.float32)
    p[0, 0] = 1.0
    for x0, y0, x1, y1, probs in cells:
        p[0, :, y0:y1, x0:x1] = 0.0
        for cid, v in probs.items():
            p[0, cid, y0:y1, x0:x1] = v
        p[0, 0, y0:y1, x0:x1] = 1.0 - sum(probs.values())
    return p


def _rows(found: Defects) -> list[tuple[int, tuple[int, int, int, int], float]]:
    return sorted((d.class_id, d.bbox_xyxy_px, round(d.score, 4)) for d in found)


# An open painted over 4x4 cells (stride 4: 16x16 px): mousebite reaches 0.3 on its left half
# and spur 0.2 on its right half, so mousebite is its next most likely reading.
OPEN_OR_MOUSEBITE = _maps(
    [
        (10, 10, 12, 14, {OPEN: 0.65, MOUSEBITE: 0.3, SPUR: 0.01}),
        (12, 10, 14, 14, {OPEN: 0.7, MOUSEBITE: 0.05, SPUR: 0.2}),
    ]
)
OPEN_BOX = (40, 40, 55, 55)


def test_a_candidate_gives_its_next_most_likely_class_at_the_probability_it_reaches() -> None:
    found = Postprocessor(_recipe(0.1)).run(OPEN_OR_MOUSEBITE, FULL, (640, 640))
    assert _rows(found) == [(OPEN, OPEN_BOX, 0.7), (MOUSEBITE, OPEN_BOX, 0.3)]
    assert found[1].area_px == found[0].area_px == 16 * 16  # the same cells, read as mousebite
    # Without the option, or where the floor is over what the alternate reaches: the open only.
    for recipe in (_recipe(0.1, alternates=False), _recipe(0.35)):
        assert _rows(Postprocessor(recipe).run(OPEN_OR_MOUSEBITE, FULL, (640, 640))) == [
            (OPEN, OPEN_BOX, 0.7)
        ]


def test_an_alternate_stays_under_one_half_even_on_a_tie() -> None:
    """A class that loses a cell holds at most half its mass: on an exact tie (the lower class
    id wins), the alternate's score is the float32 just under 0.5, so no floor of 0.5 keeps it."""
    tie = _maps([(10, 10, 14, 14, {SHORT: 0.5, SPUR: 0.5})])
    found = Postprocessor(_recipe(0.1)).run(tie, FULL, (640, 640))
    assert [d.class_id for d in found] == [SHORT, SPUR]
    assert found[0].score == np.float32(0.5)
    assert found[1].score == np.nextafter(np.float32(0.5), np.float32(0)) < 0.5
    assert [d.class_id for d in Postprocessor(_recipe(0.5)).run(tie, FULL, (640, 640))] == [SHORT]


def test_one_defect_called_twice_keeps_its_second_class_as_an_alternate() -> None:
    """A spur (0.95) with a short (0.7) inside it is one defect: with one_defect_overlap the
    short leaves the first readings; with alternates it stays, at 0.7 x SECOND_READING."""
    maps = _maps([(10, 10, 20, 20, {SPUR: 0.95}), (14, 14, 18, 18, {SHORT: 0.7})])
    spur, short = (SPUR, (40, 40, 79, 79), 0.95), (SHORT, (56, 56, 71, 71), 0.7)
    demoted = (SHORT, (56, 56, 71, 71), round(0.7 * SECOND_READING, 4))
    run = {
        (alternates, floor): _rows(
            Postprocessor(_recipe(floor, alternates=alternates, overlap=0.5)).run(
                maps, FULL, (640, 640)
            )
        )
        for alternates in (False, True)
        for floor in (0.1, 0.5)
    }
    assert run[False, 0.1] == run[False, 0.5] == run[True, 0.5] == [spur]
    assert run[True, 0.1] == sorted([spur, demoted])
    plain = Postprocessor(_recipe(0.1, alternates=False)).run(maps, FULL, (640, 640))
    assert _rows(plain) == sorted([spur, short])


@pytest.mark.parametrize("seed", range(6))
def test_reduced_maps_give_the_first_readings_and_alternates_never_reach_a_half_floor(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Random softmax maps with blobs of every class: at the shipped floors (0.5) alternates
    change nothing and full and reduced maps give identical defects; under them the full maps
    add alternates only (each under 0.5, on a first reading's box), the reduced maps none."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (1, 7, 96, 128)).astype(np.float32)
    logits[0, 0] += 4.0
    for _ in range(int(rng.integers(4, 30))):
        cid = int(rng.integers(1, 7))
        y, x = int(rng.integers(0, 88)), int(rng.integers(0, 120))
        logits[0, cid, y : y + int(rng.integers(2, 8)), x : x + int(rng.integers(2, 8))] += 6.0
        other = int(rng.integers(1, 7))
        logits[0, other, y : y + 3, x : x + 3] += 5.0  # a second class on part of it
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    reduced = ClassMaps(probs.argmax(axis=1).astype(np.uint8), probs.max(axis=1))
    tile = [Tile(0, 0, 512, 384, (0, 0, 512, 384))]
    for overlap in (None, 0.5):
        shipped = _recipe(0.5, overlap=overlap)
        plain = Postprocessor(_recipe(0.5, alternates=False, overlap=overlap)).run(
            probs, tile, (384, 512)
        )
        assert Postprocessor(shipped).run(probs, tile, (384, 512)) == plain
        assert Postprocessor(shipped).run(reduced, tile, (384, 512)) == plain
        low = _recipe(0.2, overlap=overlap)
        first = Postprocessor(_recipe(0.2, alternates=False, overlap=overlap)).run(
            probs, tile, (384, 512)
        )
        found = Postprocessor(low).run(probs, tile, (384, 512))
        # Every first reading is kept as it was; what is added scores under 0.5, on the box of
        # a candidate the maps hold (one_defect_overlap's second readings included).
        firsts = set(_rows(first))
        alternates = [row for row in _rows(found) if row not in firsts]
        assert firsts <= set(_rows(found))
        every = Postprocessor(_recipe(0.2, alternates=False)).run(probs, tile, (384, 512))
        boxes = {d.bbox_xyxy_px for d in every}
        assert all(score < 0.5 and box in boxes for _, box, score in alternates)
        with caplog.at_level(logging.WARNING, logger="aoi.vision.postprocess"):
            assert Postprocessor(low).run(reduced, tile, (384, 512)) == first
        assert "alternates need the network's full maps" in caplog.text
        caplog.clear()
        if seed == 0 and overlap is None:
            assert len(alternates) > 0


def test_the_curves_rank_an_alternate_a_missed_class_then_counts() -> None:
    """A mousebite the network paints as open: without alternates the mousebite's AP is 0;
    with them its alternate matches the truth and the AP is 1 (nothing else is a mousebite)."""
    truth = GroundTruth(np.array([[40, 40, 55, 55]]), np.array([MOUSEBITE]))
    aps = []
    for alternates in (False, True):
        found = Postprocessor(_recipe(0.05, alternates=alternates)).run(
            OPEN_OR_MOUSEBITE, FULL, (640, 640)
        )
        aps.append(class_curve([ImageDetections("a", truth, found)], MOUSEBITE, 0.33).ap)
    assert aps == [0.0, 1.0]


def test_eval_refuses_alternates_on_maps_reduced_on_the_device(difference_model) -> None:
    """``aoi eval`` with a backend that reduces the maps cannot rank alternates: it stops with
    one line naming the recipe, the option and what to run instead (the CPU backend is built
    here with the same device reduction the CUDA path uses)."""
    from aoi.inference.onnxruntime import OnnxRuntimeBackend
    from aoi.sources.synthetic.boardgen import golden_board

    loaded = load_recipe(find_recipe("board-a-640"), check_files=False)
    recipe = loaded.recipe.model_copy(
        update={"model": loaded.recipe.model.model_copy(update={"alternates": True})}
    )
    curves = LoadedRecipe(recipe, loaded.path, loaded.content_hash)
    board = golden_board(640, 640, 3, "binary")
    frame = Frame(image=board, frame_id=1, available_ns=0, source="test", name="b", template=board)
    profile = recipe.geometry.profile
    for reduce in (False, True):
        with OnnxRuntimeBackend(difference_model, profile, reduce=reduce) as backend:
            one = OnePass(backend, board, loaded, curves)
            if not reduce:
                assert not one.inspect(frame).curves.error
                continue
            with pytest.raises(AoiError) as err:
                one.inspect(frame)
    assert str(err.value) == (
        f"{loaded.path}: [model] alternates needs the network's full maps, and backend "
        "onnxruntime-cpu reduces them on the device: evaluate with --backend onnxruntime"
    )
