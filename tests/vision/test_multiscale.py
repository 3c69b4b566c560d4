"""``[model] scales`` and ``ensemble``: each board read at several scales and by several models,
the candidates fused (real ONNX Runtime sessions on the conftest difference model; recipes
written and loaded as the station does)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.app.eval_pass import OnePass
from aoi.app.evaluation import curve_recipe
from aoi.errors import ModelError, RecipeError
from aoi.inference.ensemble import Ensemble
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline
from aoi.recipe import load_recipe, scaled_side
from aoi.recipe.authoring import copy_to_folder
from aoi.types import ClassMaps, Defects, Frame, Verdict
from aoi.vision.multiscale import fuse, maps_back, resize_batch

RecipeFactory = Callable[..., Path]


def _defects(boxes: list[list[int]], classes: list[int], scores: list[float]) -> Defects:
    b = np.array(boxes, np.int64).reshape(-1, 4)
    areas = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return Defects(b, np.array(classes, np.int64), np.array(scores, np.float32), areas)


def _key(d: Defects) -> list[tuple[tuple[int, ...], int, float]]:
    return [
        (tuple(box), int(c), round(float(s), 5))
        for box, c, s in zip(d.bbox_xyxy_px.tolist(), d.class_ids, d.scores, strict=True)
    ]


def test_one_defect_seen_at_several_scales_scores_the_mean_over_all_scales() -> None:
    first = _defects([[10, 10, 29, 29], [100, 100, 119, 119]], [1, 3], [0.9, 0.8])
    second = _defects([[11, 11, 30, 30], [10, 10, 29, 29]], [1, 2], [0.7, 0.95])
    third = Defects.empty()
    out = fuse([first, second, third])
    assert _key(out) == [
        # the open seen by two of three scales: the box of its best score, (0.9 + 0.7) / 3
        ((10, 10, 29, 29), 1, round(1.6 / 3, 5)),
        # a short on the same spot is another class: not fused with the open
        ((10, 10, 29, 29), 2, round(0.95 / 3, 5)),
        ((100, 100, 119, 119), 3, round(0.8 / 3, 5)),
    ]
    # Every scale agreeing keeps the score: a defect at 0.9 in each is 0.9 fused.
    same = _defects([[5, 5, 20, 20]], [4], [0.9])
    assert _key(fuse([same, same, same])) == [((5, 5, 20, 20), 4, 0.9)]


def test_a_scale_gives_at_most_one_box_to_a_defect_and_far_boxes_stay_apart() -> None:
    # Two overlapping opens of one scale are two candidates; the other scale's box joins the
    # better one only, and a box overlapping at IoU 0.5 or less is a defect of its own.
    one = _defects([[0, 0, 19, 19], [2, 2, 21, 21]], [1, 1], [0.9, 0.6])
    other = _defects([[1, 1, 20, 20], [10, 10, 29, 29]], [1, 1], [0.8, 0.7])
    out = fuse([one, other])
    assert _key(out) == [
        ((0, 0, 19, 19), 1, round((0.9 + 0.8) / 2, 5)),
        ((10, 10, 29, 29), 1, 0.35),
        ((2, 2, 21, 21), 1, 0.3),
    ]


def test_maps_come_back_to_the_first_scale_size() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 7, 48, 40)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    back = maps_back(probs, (32, 24))
    assert back.shape == (2, 7, 32, 24)
    np.testing.assert_allclose(back.sum(axis=1), 1.0, atol=1e-5)  # still a distribution
    classes = rng.integers(0, 7, size=(2, 48, 40)).astype(np.uint8)
    reduced = ClassMaps(classes, rng.random((2, 48, 40)).astype(np.float16))
    small = maps_back(reduced, (32, 24))
    assert small.classes.shape == small.scores.shape == (2, 32, 24)
    assert small.scores.dtype == np.float16
    # nearest: every cell is a cell of the input, class and score together
    pairs = set(zip(classes.ravel().tolist(), reduced.scores.ravel().tolist(), strict=True))
    got = zip(small.classes.ravel().tolist(), small.scores.ravel().tolist(), strict=True)
    assert set(got) <= pairs


def test_boards_are_resampled_as_opencv_does() -> None:
    rng = np.random.default_rng(2)
    batch = rng.integers(0, 256, size=(2, 2, 64, 80), dtype=np.uint8)
    out = resize_batch(batch, (96, 120))
    assert out.shape == (2, 2, 96, 120) and out.dtype == np.uint8
    want = cv2.resize(batch[1, 0], (120, 96), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out[1, 0], want)
    assert scaled_side(640, 1.25, 16) == 800 and scaled_side(640, 1.5, 16) == 960
    assert scaled_side(100, 1.3, 16) == 128  # 130 rounded to the model's multiple


def _with_scales(path: Path, scales: str, profile_max: int) -> Path:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^(path = ".*")$', rf"\1\nscales = {scales}", text, count=1)
    text = re.sub(
        r"profile\.max = \{ batch = 1, height_px = \d+, width_px = \d+ \}",
        f"profile.max = {{ batch = 1, height_px = {profile_max}, width_px = {profile_max} }}",
        text,
    )
    path.write_text(text, encoding="utf-8")
    return path


def test_recipe_scales_are_checked_naming_the_field(make_recipe: RecipeFactory) -> None:
    bad = _with_scales(make_recipe(name="bad-scales"), "[1.5, 1.0]", 512)
    with pytest.raises(RecipeError, match=r"model\.scales.*must start with 1.*\[1\.5, 1\.0\]"):
        load_recipe(bad)
    small = _with_scales(make_recipe(name="small-profile"), "[1.0, 1.5]", 320)
    with pytest.raises(
        RecipeError, match=r"geometry\.profile\.max.*at least 384x384 px, found 320x320"
    ):
        load_recipe(small)


class _Recording:
    """The real backend, with the input shapes it was given written down."""

    def __init__(self, backend: OnnxRuntimeBackend) -> None:
        self._backend = backend
        self.shapes: list[tuple[int, ...]] = []
        self.name, self.model_hash = backend.name, backend.model_hash

    def predict(self, batch: np.ndarray, *extra: np.ndarray) -> np.ndarray | ClassMaps:
        self.shapes.append(tuple(batch.shape))
        return self._backend.predict(batch, *extra)


def test_the_cycle_reads_every_board_at_every_scale(make_recipe: RecipeFactory) -> None:
    path = _with_scales(make_recipe(name="scales"), "[1.0, 1.5]", 384)
    loaded = load_recipe(path)
    profile = loaded.recipe.geometry.profile
    with OnnxRuntimeBackend(loaded.model_path, profile, threads=1) as backend:
        recording = _Recording(backend)
        pipe = Pipeline(loaded, recording)  # type: ignore[arg-type]
        board = pipe.template.copy()
        clean = pipe.inspect(Frame(board.copy(), 0, time.perf_counter_ns(), "test", "clean"))
        y, x = _bare_spot(board, 24)
        board[y : y + 24, x : x + 24] = 255 - board[y : y + 24, x : x + 24]  # a spot inverted
        found = pipe.inspect(Frame(board, 1, time.perf_counter_ns(), "test", "copper"))
    assert recording.shapes == [(1, 2, 256, 256), (1, 2, 384, 384)] * 2
    assert clean.verdict is Verdict.OK and not len(clean.defects)
    assert found.verdict is Verdict.NG
    x0, y0, x1, y1 = found.defects.bbox_xyxy_px[0].tolist()
    assert x0 <= x + 4 and y0 <= y + 4 and x1 >= x + 19 and y1 >= y + 19  # on the added copper


def _bare_spot(board: np.ndarray, side: int) -> tuple[int, int]:
    """The top-left corner of a side x side square of one shade, away from the edges."""
    for y in range(48, board.shape[0] - side - 48, 4):
        for x in range(48, board.shape[1] - side - 48, 4):
            square = board[y : y + side, x : x + side].astype(int)
            if square.max() - square.min() < 40 and abs(square.mean() - 128) > 80:
                return y, x
    raise AssertionError("the golden board has no square of one shade")


ModelFactory = Callable[..., Path]


def _ensemble_recipe(
    make_recipe: RecipeFactory, build_model: ModelFactory, tmp_path: Path, name: str
) -> Path:
    """A recipe whose first model paints differences as spurious copper and whose ensemble's
    second model (the same difference model) paints them as pin holes."""
    second = build_model(tmp_path / "pin-hole.onnx", defect_class=6)
    path = make_recipe(name=name)
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^(path = ".*")$', rf'\1\nensemble = ["{second.name}"]', text, count=1)
    text = text.replace(
        "spurious_copper = { score = 0.5, review_score = 0.3, min_area_px = 16 }",
        "spurious_copper = { score = 0.3, min_area_px = 16 }\n"
        "pin_hole = { score = 0.3, min_area_px = 16 }",
    )
    path.write_text(text, encoding="utf-8")
    return path


def _spot_board(template: np.ndarray) -> tuple[np.ndarray, int, int]:
    board = template.copy()
    y, x = _bare_spot(board, 24)
    board[y : y + 24, x : x + 24] = 255 - board[y : y + 24, x : x + 24]
    return board, y, x


def test_an_ensemble_reads_every_board_with_every_model_and_fuses_them(
    make_recipe: RecipeFactory, build_model: ModelFactory, tmp_path: Path
) -> None:
    path = _ensemble_recipe(make_recipe, build_model, tmp_path, "ensemble")
    loaded = load_recipe(path)
    assert [p.name for p in loaded.ensemble_paths] == ["pin-hole.onnx"]
    profile = loaded.recipe.geometry.profile
    first = OnnxRuntimeBackend(loaded.model_path, profile, threads=1)
    second = OnnxRuntimeBackend(loaded.ensemble_paths[0], profile, threads=1)
    with Ensemble(first, [second]) as both:
        pipe = Pipeline(loaded, both)
        board, _y, _x = _spot_board(pipe.template)
        fused = pipe.inspect(Frame(board, 0, time.perf_counter_ns(), "test", "spot"))
        # The first model alone, on a recipe without the ensemble: its own score for the spot.
        alone = Pipeline(load_recipe(_without_ensemble(path)), first)
        single = alone.inspect(Frame(board, 1, time.perf_counter_ns(), "test", "spot"))
        assert len(both.model_hash) == 64 and both.model_hash != first.model_hash
    assert single.defects.class_names == ("spurious_copper",)
    score = float(single.defects.scores[0])
    # Each model finds the spot in its own class; the other model's reading counts 0 for it.
    assert sorted(fused.defects.class_names) == ["pin_hole", "spurious_copper"]
    np.testing.assert_allclose(fused.defects.scores, [score / 2, score / 2], rtol=1e-6)
    for box in fused.defects.bbox_xyxy_px.tolist():
        assert box == single.defects.bbox_xyxy_px[0].tolist()


def _without_ensemble(path: Path) -> Path:
    single = path.with_name("single.toml")
    text = re.sub(r"(?m)^ensemble = .*\n", "", path.read_text(encoding="utf-8"))
    single.write_text(text, encoding="utf-8")
    return single


def test_an_ensemble_recipe_needs_every_model(
    make_recipe: RecipeFactory, build_model: ModelFactory, tmp_path: Path
) -> None:
    path = _ensemble_recipe(make_recipe, build_model, tmp_path, "needs-all")
    loaded = load_recipe(path)
    hashed = loaded.content_hash
    first = OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile)
    refused = pytest.raises(ModelError, match=r"names 1 further model\(s\) in model\.ensemble")
    with first as one, refused:
        Pipeline(loaded, one)  # a backend for the first model only: refused, not ignored
    # The second model's bytes are part of what the recipe inspects with.
    build_model(tmp_path / "pin-hole.onnx", stride=2, defect_class=6)
    assert load_recipe(path).content_hash != hashed
    (tmp_path / "pin-hole.onnx").unlink()
    with pytest.raises(RecipeError, match=r"model\.ensemble\[0\] must name an existing file"):
        load_recipe(path)


def test_a_copied_ensemble_recipe_still_finds_its_models(
    make_recipe: RecipeFactory, build_model: ModelFactory, tmp_path: Path
) -> None:
    path = _ensemble_recipe(make_recipe, build_model, tmp_path, "copied")
    copy = copy_to_folder(path, tmp_path / "site")
    loaded = load_recipe(copy)
    assert loaded.ensemble_paths == (tmp_path.resolve() / "pin-hole.onnx",)


def test_aoi_eval_runs_an_ensemble_once_per_pair(
    make_recipe: RecipeFactory, build_model: ModelFactory, tmp_path: Path
) -> None:
    loaded = load_recipe(_ensemble_recipe(make_recipe, build_model, tmp_path, "eval"))
    profile = loaded.recipe.geometry.profile
    backends = [OnnxRuntimeBackend(p, profile) for p in (loaded.model_path, *loaded.ensemble_paths)]
    with Ensemble(backends[0], backends[1:]) as both:
        template = Pipeline(loaded, both).template
        one = OnePass(both, template, loaded, curve_recipe(loaded))
        board, _y, _x = _spot_board(template)
        got = one.inspect(Frame(board, 0, time.perf_counter_ns(), "test", "pair"))
    assert not got.deployed.error and not got.curves.error
    assert one.network.calls == 1 and [m.calls for m in one.network.members] == [1]
    assert sorted(got.curves.defects.class_names) == sorted(got.deployed.defects.class_names)
