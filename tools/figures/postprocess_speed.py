"""Host postprocessing of reduced maps, old code against new: identical defects, and the time.

Renders boards of each recipe with the station's synthetic source, registers them and runs the
recipe's shipped ONNX model on the CPU (ONNX Runtime, the graph reduced at load to the per-cell
class and score, as on the GPU station), and keeps each board's :class:`ClassMaps`, tiles and
seen region. Then, on the same maps, it runs the postprocessing (``Postprocessor.run``, then
``split`` and ``decide``) of an old commit and of this working tree, interleaved board by
board, and asserts both give the same candidates, defects, review band and verdict. Scores
are checked as float32 maps and as float16 (the GPU station's reduced scores), and each board
also once with the recipe's don't-care masks replaced by a few test masks.

    PYTHONPATH=. python tools/figures/postprocess_speed.py [--old REF] [--boards 300]

The old code is the four modules (aoi/defects.py, aoi/vision/contested.py, postprocess.py,
verdict.py) as committed at ``REF``, imported from a temporary folder, so ``aoi/`` holds one
copy only. Prints one JSON line per recipe and score type: p50/p99 microseconds per board.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline
from aoi.recipe import MaskRegion, find_recipe, load_recipe
from aoi.sources.synthetic import SyntheticSource
from aoi.types import ClassMaps
from aoi.vision import postprocess, verdict

ROOT = Path(__file__).resolve().parents[2]
GIT = shutil.which("git") or "git"
#: The commit this branch's postprocessing work started from.
BASE = "8d5ec0f"
#: The modules the old code is taken from, in import order.
_OLD = ("aoi/defects.py", "aoi/vision/contested.py", "aoi/vision/postprocess.py",
        "aoi/vision/verdict.py")  # fmt: skip


def old_modules(ref: str, folder: Path) -> dict[str, ModuleType]:
    """The four modules at ``ref``, wired to each other (not to the working tree's)."""
    out: dict[str, ModuleType] = {}
    for path in _OLD:
        stem = Path(path).stem
        text = subprocess.run(  # noqa: S603 (git, the ref this tool is given)
            [GIT, "show", f"{ref}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        file = folder / f"old_{stem}.py"
        file.write_text(text)
        spec = importlib.util.spec_from_file_location(f"old_{stem}", file)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        out[stem] = mod
    d = out["defects"]
    for stem in ("contested", "postprocess", "verdict"):
        for name in ("Defects", "GroundTruth"):
            if hasattr(out[stem], name):
                setattr(out[stem], name, getattr(d, name))
    out["postprocess"].windows = out["contested"].windows
    return out


Board = tuple[ClassMaps, list, tuple[int, int], tuple[int, int, int, int] | None]


def collect(recipe: str, boards: int, seed: int) -> tuple[object, list[Board]]:
    """The recipe, and ``boards`` synthetic boards' reduced maps (float32 scores), tiles, input
    size and seen region, from the shipped model on the CPU."""
    loaded = load_recipe(find_recipe(recipe))
    out: list[Board] = []
    profile = loaded.recipe.geometry.profile
    with OnnxRuntimeBackend(loaded.model_path, profile, reduce=True, score_dtype="float32") as be:
        pipeline = Pipeline(loaded, be)
        with SyntheticSource(pipeline.template, loaded.recipe.synthetic, seed=seed) as source:
            for _ in range(boards):
                staged = pipeline.prepare(source.grab())
                assert staged.error is None, staged.error
                hw = (pipeline.inputs.input_h, pipeline.inputs.input_w)
                for batch, tiles in pipeline.inputs.for_network(staged.aligned, staged.template):
                    maps = be.predict(batch)
                    assert isinstance(maps, ClassMaps)
                    out.append((maps, tiles, hw, staged.seen))
    return loaded.recipe, out


def _columns(found: object) -> tuple[np.ndarray, ...]:
    return tuple(getattr(found, n) for n in ("bbox_xyxy_px", "class_ids", "scores", "areas_px"))


def same(a: object, b: object) -> bool:
    """Whether two Defects (of either code) hold the same rows, values and dtypes."""
    return all(
        x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
        for x, y in zip(_columns(a), _columns(b), strict=True)
    )


def _stage(post: object, rules: object, split: object, decide: object, board: Board) -> tuple:
    maps, tiles, hw, seen = board
    found = post.run(maps, tiles, hw, seen)
    cands = split(rules, found)
    return found, cands, decide(rules, cands)


def compare(recipe: object, boards: list[Board], old: dict[str, ModuleType], rounds: int) -> dict:
    """Old and new on every board, interleaved; asserts identical results, returns the times."""
    old_post = old["postprocess"].Postprocessor(recipe)
    new_post = postprocess.Postprocessor(recipe)
    old_rules = old["verdict"].VerdictRules.of(recipe)
    new_rules = verdict.VerdictRules.of(recipe)
    old_args = (old_post, old_rules, old["verdict"].split, old["verdict"].decide)
    new_args = (new_post, new_rules, verdict.split, verdict.decide)
    times: dict[str, list[float]] = {"old": [], "new": []}
    found_rows = 0
    for r in range(rounds):
        for k, board in enumerate(boards):
            order = ("old", "new") if (k + r) % 2 == 0 else ("new", "old")
            got = {}
            for which in order:
                args = old_args if which == "old" else new_args
                t = time.perf_counter_ns()
                got[which] = _stage(*args, board)
                times[which].append((time.perf_counter_ns() - t) / 1e3)
            (fo, co, do), (fn, cn, dn) = got["old"], got["new"]
            assert same(fo, fn), (k, _columns(fo), _columns(fn))
            assert same(co.defects, cn.defects) and same(co.review, cn.review), k
            assert (do.verdict, do.reason) == (dn.verdict, dn.reason), (k, do, dn)
            found_rows += len(fn) if r == 0 else 0
    out = {"boards": len(boards), "rounds": rounds, "candidates": found_rows}
    for which, ts in times.items():
        out[f"{which}_p50_us"] = round(float(np.percentile(ts, 50)), 1)
        out[f"{which}_p99_us"] = round(float(np.percentile(ts, 99)), 1)
    return out


def _half(boards: list[Board]) -> list[Board]:
    """The boards with float16 scores (the GPU station's reduced output)."""
    return [(ClassMaps(m.classes, m.scores.astype(np.float16)), *rest) for m, *rest in boards]


def _masked(recipe: object) -> object:
    """The recipe with three don't-care regions (a corner, a band, a block in the middle)."""
    masks = [
        MaskRegion(x0=0, y0=0, x1=120, y1=120, note="corner"),
        MaskRegion(x0=0, y0=300, x1=640, y1=340, note="band"),
        MaskRegion(x0=400, y0=100, x1=520, y1=260, note="block"),
    ]
    return recipe.model_copy(update={"masks": masks})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--old", default=BASE, help="the commit whose code is 'old'")
    parser.add_argument("--boards", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the boards")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--recipes", nargs="+", default=["deeppcb-640", "board-a-640"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = old_modules(args.old, Path(tmp))
        for name in args.recipes:
            recipe, boards = collect(name, args.boards, args.seed)
            for scores, maps in (("float32", boards), ("float16", _half(boards))):
                row = compare(recipe, maps, old, args.rounds)
                print(json.dumps({"recipe": name, "scores": scores, **row}), flush=True)
            masked = compare(_masked(recipe), boards, old, 1)
            print(json.dumps({"recipe": name, "scores": "float32", "masks": 3, **masked}))


if __name__ == "__main__":
    main()
