"""Issue 15 on the GPU machine: the cycle with the frame uploaded once (frame_input.py) against
the same cycle with the padded [1, 2, H, W] batch uploaded every board (``noframe``), on
CUDA, the same synthetic boards: verdicts, defect classes, boxes and scores, one JSON line per
recipe. (tests/inference/test_frame_input.py checks the same on the CPU provider.)

    AOI_ORT_CUDA=graph[,fp16,fp32tail] python3 tools/gpu/frame_parity.py RECIPE [BOARDS] [--cpu]
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np

from aoi.inference.cuda_options import CudaOptions
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import load_recipe
from aoi.sources.synthetic import SyntheticSource
from aoi.types import InspectionResult


def _cycle(recipe: str, frames: bool, boards: int) -> tuple[list[InspectionResult], bool]:
    loaded = load_recipe(recipe)
    options = replace(CudaOptions.from_env(), frames=frames)
    got: list[InspectionResult] = []
    profile = loaded.recipe.geometry.profile
    device = "cpu" if "--cpu" in sys.argv else "cuda"  # --cpu: a dry run on the CPU provider
    with OnnxRuntimeBackend(
        loaded.model_path, profile, device=device, cuda=options, warp=True, registration=True,
        frames=frames, reduce=True,
    ) as be:  # fmt: skip
        pipeline = Pipeline(loaded, be)
        pipeline.warm_up()
        with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=11) as source:
            run_cycles(pipeline, source, cycles=boards, on_result=got.append)
        return got, pipeline.frame_input


def main(recipe: str, boards: int) -> None:
    (old, a), (new, b) = _cycle(recipe, False, boards), _cycle(recipe, True, boards)
    verdicts = sum(x.verdict != y.verdict for x, y in zip(old, new, strict=True))
    defects = sum(len(x.defects) for x in old)
    unmatched, box, score = 0, 0.0, 0.0
    for x, y in zip(old, new, strict=True):
        if len(x.defects) != len(y.defects) or not np.array_equal(
            x.defects.class_ids, y.defects.class_ids
        ):
            unmatched += 1
            continue
        if len(x.defects):
            box = max(box, float(np.abs(x.defects.bbox_xyxy_px - y.defects.bbox_xyxy_px).max()))
            score = max(score, float(np.abs(x.defects.scores - y.defects.scores).max()))
    out = {
        "recipe": recipe, "boards": boards, "frame_input": [a, b], "verdicts_differing": verdicts,
        "defects": defects, "boards_with_other_defects": unmatched, "max_box_shift_px": box,
        "max_score_diff": score,
    }  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--cpu"]
    main(args[0], int(args[1]) if len(args) > 1 else 40)
