"""Device warp (aoi/inference/warp.py) against the CPU warp: pixel and defect differences over
synthetic boards of a recipe (issue 15). With ``--device cuda`` the graph's pixels come from the
CUDA provider, and the defects compare the CPU path (registration and warp on the CPU) with the
device path (on CUDA both run on the device: aoi/inference/devreg.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.inference.warp import affine_feed, device_affine, warp_model
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import load_recipe
from aoi.sources.synthetic import SyntheticSource
from aoi.types import InspectionResult

ROOT = Path(__file__).resolve().parents[2]


def pixel_differences(
    recipe: Path, boards: int, seed: int = 5, device: str = "cpu"
) -> dict[str, float]:
    """Max and mean |graph warp - cv2.warpAffine| over ``boards`` registered synthetic boards,
    the graph run on ``device``."""
    loaded = load_recipe(recipe)
    model = warp_model(onnx.load(str(loaded.model_path)))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("boards_registered", onnx.TensorProto.UINT8, None)
    )
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(model.SerializeToString(), providers=providers)
    with OnnxRuntimeBackend(loaded.model_path, loaded.recipe.geometry.profile, threads=1) as be:
        pipeline = Pipeline(loaded, be)
    worst, total, count, over1 = 0, 0.0, 0, 0
    with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=seed) as source:
        for _ in range(boards):
            image = source.grab().image
            reg = pipeline.registrar.register(image)
            cpu = cv2.warpAffine(
                image, reg.transform, image.shape[::-1],
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE,
            )  # fmt: skip
            batch = np.stack([image, pipeline.template])[None]
            affine = affine_feed(device_affine(reg.transform, *image.shape)[None], batch.shape)
            dev = session.run(["boards_registered"], {"boards": batch, "affine": affine})[0][0, 0]
            d = np.abs(dev.astype(np.int16) - cpu.astype(np.int16))
            worst, total, count = max(worst, int(d.max())), total + float(d.sum()), count + d.size
            over1 += int((d > 1).sum())
    return {"max": worst, "mean": total / count, "pixels_over_1": over1}


def answers(
    recipe: Path, boards: int, warp: bool, seed: int = 5, device: str = "cpu"
) -> list[InspectionResult]:
    """The results of ``boards`` synthetic boards with the warp on the CPU or in the graph."""
    loaded = load_recipe(recipe)
    got: list[InspectionResult] = []
    profile = loaded.recipe.geometry.profile
    with OnnxRuntimeBackend(loaded.model_path, profile, device=device, warp=warp) as be:
        pipeline = Pipeline(loaded, be)
        assert pipeline.device_warp == warp
        with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=seed) as source:
            run_cycles(pipeline, source, cycles=boards, on_result=got.append)
    return got


def defect_differences(cpu: list[InspectionResult], dev: list[InspectionResult]) -> dict:
    """Verdicts that differ, and per board the defects matched by class and box within 2 px."""
    verdicts = sum(a.verdict != b.verdict for a, b in zip(cpu, dev, strict=True))
    unmatched, box_px, score = 0, 0.0, 0.0
    for a, b in zip(cpu, dev, strict=True):
        da, db = a.defects, b.defects
        used: set[int] = set()
        for i in range(len(da)):
            best = None
            for j in range(len(db)):
                if j in used or da.class_ids[i] != db.class_ids[j]:
                    continue
                off = float(np.abs(da.bbox_xyxy_px[i] - db.bbox_xyxy_px[j]).max())
                if off <= 2 and (best is None or off < best[1]):
                    best = (j, off)
            if best is None:
                unmatched += 1
                continue
            used.add(best[0])
            box_px = max(box_px, best[1])
            score = max(score, abs(float(da.scores[i]) - float(db.scores[best[0]])))
        unmatched += len(db) - len(used)
    defects = sum(len(r.defects) for r in cpu)
    return {
        "boards": len(cpu), "verdicts_differing": verdicts, "defects_cpu": defects,
        "defects_unmatched": unmatched, "max_box_px": box_px, "max_score": score,
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipe", action="append", default=[])
    p.add_argument("--boards", type=int, default=30)
    p.add_argument("--device", default="cpu", help="where the defects are compared: cpu, cuda")
    args = p.parse_args()
    for name in args.recipe or ["board-a-640"]:
        recipe = ROOT / "recipes" / f"{name}.toml"
        row = {"recipe": name, "device": args.device}
        row["pixels"] = pixel_differences(recipe, args.boards, device=args.device)
        row["defects"] = defect_differences(
            answers(recipe, args.boards, False, device=args.device),
            answers(recipe, args.boards, True, device=args.device),
        )
        print(json.dumps(row))


if __name__ == "__main__":
    main()
