"""The pipelined loop answers the same boards with the same verdicts and defects, in the same
order, as the sequential one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline, run_cycles
from aoi.pipelined import run_pipelined
from aoi.recipe import load_recipe
from aoi.sources.synthetic import SyntheticSource
from aoi.types import InspectionResult

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "board-a-640.toml"
BOARDS = 30


def _answers(pipelined: bool) -> list[InspectionResult]:
    loaded = load_recipe(RECIPE)
    got: list[InspectionResult] = []
    with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile, threads=1) as be:
        pipeline = Pipeline(loaded, be)
        with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=3) as source:
            loop = run_pipelined if pipelined else run_cycles
            stats = loop(pipeline, source, cycles=BOARDS, on_result=got.append)
    assert stats.cycles == BOARDS
    assert stats.summary()["boards_per_s"] > 0
    return got


@pytest.mark.slow
def test_pipelined_matches_the_sequential_loop() -> None:
    seq, pip = _answers(False), _answers(True)
    assert len(pip) == len(seq) == BOARDS
    for a, b in zip(seq, pip, strict=True):
        assert (a.frame_id, a.frame_name, a.verdict, a.verdict_reason, a.error) == (
            b.frame_id, b.frame_name, b.verdict, b.verdict_reason, b.error,
        )  # fmt: skip
        assert a.inspection_id == b.inspection_id
        for name in ("defects", "review_defects"):
            da, db = getattr(a, name), getattr(b, name)
            assert len(da) == len(db)
            np.testing.assert_array_equal(da.bbox_xyxy_px, db.bbox_xyxy_px)
            np.testing.assert_array_equal(da.class_ids, db.class_ids)
            np.testing.assert_array_equal(da.scores, db.scores)
    # Some boards must carry defects, or the comparison proves little.
    assert any(len(r.defects) for r in seq)
