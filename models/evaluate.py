"""Measure a defect model on held-out synthetic boards: board verdicts, false calls, class recall.

Usage::

    python -m models.evaluate --onnx models/aoi-defect-v1.onnx            # the model card's figures

Boards come from ``boardgen.golden_board`` + ``boardgen.board_under_test`` (no misalignment,
noise_sigma 4), half of them defect-free and 1..4 defects on the others. The post-processing and
the verdict are the station's own (:mod:`aoi.vision.postprocess`, :mod:`aoi.vision.verdict`),
run with the shipped default recipe whose every class has ``score = threshold``, no review band
and ``min_area_px = min_area_cells * S * S`` (S the model's output stride). A board is called
(NG, or REVIEW for a flood of defects) iff the station's verdict is not OK. A truth box is
recalled when a defect of its class overlaps it with IoU >= 0.33 (:func:`aoi.metrics.iou_matrix`).
Nothing here imports torch.
"""

from __future__ import annotations

import os

# boardgen fits illumination with numpy's lstsq; multi-threaded OpenBLAS makes that 4x slower
# on a busy 2-core CPU. This must run before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aoi.metrics import iou_matrix
from aoi.recipe import DEFAULT_RECIPE, ClassRule, Recipe, find_recipe, load_recipe
from aoi.sources.synthetic import boardgen
from aoi.types import DEFECT_CLASSES, GroundTruth, Verdict
from aoi.vision.postprocess import Postprocessor
from aoi.vision.preprocess import Tile
from aoi.vision.verdict import VerdictRules, decide, split

log = logging.getLogger(__name__)

#: Maps uint8 boards [1, 2, H, W] to probs [1, 7, H/S, W/S].
Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class EvalSpec:
    """Which held-out boards to draw and how to threshold (the TOML config's ``[eval]`` table)."""

    boards: int = 300
    size: int = 640
    look: str = "binary"
    grey_boards: int = 100
    grey_size: int = 1024
    seed: int = 900000
    threshold: float = 0.5
    min_area_cells: int = 4
    iou: float = 0.33


def eval_recipe(spec: EvalSpec, stride: int) -> Recipe:
    """The shipped default recipe with every class at the spec's threshold and minimum area, no
    review band and no masks: the station's rules with the model card's thresholds."""
    base = load_recipe(find_recipe(DEFAULT_RECIPE), check_files=False).recipe
    rule = ClassRule(score=spec.threshold, min_area_px=spec.min_area_cells * stride * stride)
    classes = dict.fromkeys(DEFECT_CLASSES, rule)
    return base.model_copy(update={"classes": classes, "masks": []})


def held_out_boards(
    count: int, size: int, look: str, seed: int
) -> list[tuple[np.ndarray, np.ndarray, GroundTruth]]:
    """Held-out (test, template, truth): even indices clean, odd ones 1..4 defects."""
    boards = []
    for i in range(count):
        board_seed = seed + i
        template = boardgen.golden_board(size, size, board_seed, look)  # type: ignore[arg-type]
        rng = np.random.default_rng([board_seed, 7])
        k = 0 if i % 2 == 0 else int(rng.integers(1, 5))
        test, truth, _ = boardgen.board_under_test(
            template,
            rng,
            look=look,  # type: ignore[arg-type]
            defect_count=k,
            max_shift_px=0,
            max_rotation_deg=0,
            noise_sigma=4,
        )
        boards.append((test, template, truth))
    return boards


def evaluate(predict: Predictor, spec: EvalSpec, count: int, size: int, look: str) -> dict:
    """Run ``predict`` over held-out boards and return the model card's figures as a dict."""
    boards = held_out_boards(count, size, look, spec.seed + (0 if look == "binary" else 500000))
    n_classes = len(DEFECT_CLASSES)
    truth_per_class = np.zeros(n_classes + 1, np.int64)
    hit_per_class = np.zeros(n_classes + 1, np.int64)
    located_per_class = np.zeros(n_classes + 1, np.int64)
    correct = false_calls = clean = escapes = stray = 0
    infer_ms: list[float] = []
    rules: VerdictRules | None = None
    post: Postprocessor | None = None
    for test, template, truth in boards:
        pair = np.stack([test, template])[None]
        start = time.perf_counter()
        probs = predict(pair)
        infer_ms.append((time.perf_counter() - start) * 1e3)
        h, w = test.shape
        if rules is None or post is None:
            recipe = eval_recipe(spec, stride=h // probs.shape[2])
            post, rules = Postprocessor(recipe), VerdictRules.of(recipe)
        calls = split(rules, post.run(probs, [Tile(0, 0, w, h, (0, 0, w, h))], (h, w)))
        found = calls.defects
        defective = truth.is_defective
        called_ng = decide(rules, calls).verdict is not Verdict.OK
        correct += int(defective == called_ng)
        if not defective:
            clean += 1
            false_calls += int(called_ng)
        else:
            escapes += int(not called_ng)
        ious = iou_matrix(truth.bbox_xyxy_px, found.bbox_xyxy_px)  # truth x found
        close = ious >= spec.iou
        same = truth.class_ids[:, None] == found.class_ids[None, :]
        np.add.at(truth_per_class, truth.class_ids, 1)
        np.add.at(hit_per_class, truth.class_ids, (close & same).any(axis=1).astype(np.int64))
        np.add.at(located_per_class, truth.class_ids, close.any(axis=1).astype(np.int64))
        stray += int((ious <= 0).all(axis=0).sum())
    recall = {
        DEFECT_CLASSES[c - 1]: {
            "truth": int(truth_per_class[c]),
            "recall": float(hit_per_class[c] / max(truth_per_class[c], 1)),
            "located_any_class": float(located_per_class[c] / max(truth_per_class[c], 1)),
        }
        for c in range(1, n_classes + 1)
    }
    return {
        "look": look,
        "size": size,
        "boards": count,
        "board_accuracy": correct / count,
        "clean_boards": clean,
        "false_call_boards": false_calls,
        "escaped_ng_boards": escapes,
        "stray_components": stray,
        "recall_all": float(hit_per_class.sum() / max(truth_per_class.sum(), 1)),
        "recall_per_class": recall,
        "predict_ms_median": float(np.median(infer_ms)),
    }


def format_report(result: dict) -> str:
    """A few human-readable lines for one :func:`evaluate` result."""
    lines = [
        f"{result['look']} {result['size']}x{result['size']}, {result['boards']} boards: "
        f"board accuracy {result['board_accuracy']:.4f}, false calls "
        f"{result['false_call_boards']}/{result['clean_boards']} clean, escapes "
        f"{result['escaped_ng_boards']}, stray components {result['stray_components']}, "
        f"recall {result['recall_all']:.3f}"
    ]
    for name, r in result["recall_per_class"].items():
        lines.append(
            f"  {name:16s} n={r['truth']:4d} recall {r['recall']:.3f} "
            f"(any class {r['located_any_class']:.3f})"
        )
    return "\n".join(lines)


def onnx_predictor(path: Path, threads: int = 2) -> Predictor:
    """An ORT CPU predictor for an exported model."""
    from models.export import INPUT_NAME, OUTPUT_NAME, cpu_session

    session = cpu_session(path, threads)

    def predict(boards: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: boards})[0]

    return predict


def run_spec(predict: Predictor, spec: EvalSpec) -> list[dict]:
    """Both parts of the model card's evaluation: the main look, then grey at the larger size."""
    results = []
    if spec.boards:
        results.append(evaluate(predict, spec, spec.boards, spec.size, spec.look))
    if spec.grey_boards:
        results.append(evaluate(predict, spec, spec.grey_boards, spec.grey_size, "grey"))
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: evaluate an ONNX model and print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, default=Path("models/aoi-defect-v1.onnx"))
    parser.add_argument("--boards", type=int, default=EvalSpec.boards)
    parser.add_argument("--grey-boards", type=int, default=EvalSpec.grey_boards)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    spec = EvalSpec(boards=args.boards, grey_boards=args.grey_boards)
    results = run_spec(onnx_predictor(args.onnx), spec)
    for result in results:
        print(format_report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
