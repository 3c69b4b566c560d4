"""``aoi eval``: the station's own inference and postprocessing over an annotated split.

Each pair of a DeepPCB-layout split (``PCBData/trainval.txt`` format: ``group/G/ID.jpg
group/G_not/ID.txt`` per line, relative to the ``PCBData`` folder) goes through
:meth:`Pipeline.inspect` exactly as in the cycle, with one network pass read twice
(:mod:`aoi.app.eval_pass`): with the recipe as deployed, whose detections at or above each
class's ``score`` give the operating point (precision, recall, F-score), exactly what the station
would report; and with the review band of every class widened down to :data:`CURVE_FLOOR`, for
the precision-recall curves and AP. ``--export DIR`` writes both in DeepPCB's result format
(:mod:`aoi.app.eval_export`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aoi.app.defect_free import Disturbance, run_defect_free
from aoi.app.eval_export import export_results
from aoi.app.eval_pass import OnePass
from aoi.app.rig import Rig
from aoi.config import StationConfig
from aoi.errors import AoiError, SourceError
from aoi.metrics import ImageDetections, Report, evaluate
from aoi.pixels import to_mono8
from aoi.recipe import DEFAULT_RECIPE, LoadedRecipe, find_recipe, load_recipe
from aoi.sources.replay import read_annotation, read_image
from aoi.types import DEFECT_CLASSES, BackendName, Defects, Frame, InspectionResult

log = logging.getLogger(__name__)

#: Lowest score kept for the precision-recall curve.
CURVE_FLOOR = 0.05


@dataclass(frozen=True)
class SplitEntry:
    """One pair of a split list: the test image, its template and its annotation file."""

    test: Path
    template: Path
    annotation: Path

    @property
    def name(self) -> str:
        """The pair's image name as DeepPCB's lists and its ``gt.zip`` give it (``20085000``)."""
        return self.test.stem.removesuffix("_test")


def read_grey(path: Path) -> np.ndarray:
    """An image of a pair as the pipeline reads it: uint8 grey (a few DeepPCB files are 3-channel
    JPEGs; the station turns colour to grey with :func:`aoi.pixels.to_mono8` for every frame)."""
    return to_mono8(read_image(path))


def read_split(data_dir: Path, split: Path) -> list[SplitEntry]:
    """The pairs a split list names; a bad line names the list file, the line and what is wrong."""
    try:
        lines = split.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        msg = f"{split}: cannot read split list ({err})"
        raise SourceError(msg) from err
    out = []
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            expected = "'group/G/ID.jpg group/G_not/ID.txt'"
            msg = f"{split}:{no}: expected {expected}, found {line.strip()!r}"
            raise SourceError(msg)
        image, annotation = data_dir / parts[0], data_dir / parts[1]
        stem = image.with_suffix("")
        entry = SplitEntry(
            Path(f"{stem}_test{image.suffix}"), Path(f"{stem}_temp{image.suffix}"), annotation
        )
        for p in (entry.test, entry.template, entry.annotation):
            if not p.is_file():
                msg = f"{split}:{no}: {p} does not exist (is --data the PCBData folder?)"
                raise SourceError(msg)
        out.append(entry)
    if not out:
        msg = f"{split}: the split list names no pairs"
        raise SourceError(msg)
    return out


def curve_recipe(loaded: LoadedRecipe) -> LoadedRecipe:
    """The recipe with every class's review band widened down to CURVE_FLOOR."""
    r = loaded.recipe
    classes = {
        name: r.rule_for(name).model_copy(update={"review_score": CURVE_FLOOR})
        for name in DEFECT_CLASSES
        if r.rule_for(name).action != "ignore"
    }
    return LoadedRecipe(r.model_copy(update={"classes": classes}), loaded.path, loaded.content_hash)


@dataclass(frozen=True)
class PairOutcome:
    """One pair's detections: at the curve floor, as deployed, and what the station calls."""

    name: str
    curves: ImageDetections
    deployed: ImageDetections
    called: Defects


def _detections(name: str, frame: Frame, result: InspectionResult) -> ImageDetections:
    truth = frame.truth
    assert truth is not None
    return ImageDetections(name, truth, Defects.merge([result.defects, result.review_defects]))


def run_split(
    inspector: OnePass,
    entries: Sequence[SplitEntry],
    progress: Callable[[int, int], None] | None = None,
) -> list[PairOutcome]:
    """Inspect every pair through the cycle's code path, one network pass each; a failed
    inspection is an error."""
    out = []
    for i, e in enumerate(entries):
        frame = Frame(
            image=read_grey(e.test),
            frame_id=i,
            available_ns=time.perf_counter_ns(),
            source="eval",
            name=e.test.stem,
            template=read_grey(e.template),
            truth=read_annotation(e.annotation),
        )
        both = inspector.inspect(frame)
        for result in (both.deployed, both.curves):
            if result.error:
                msg = f"{e.test}: inspection failed: {result.error}"
                raise AoiError(msg)
        name = e.test.stem
        out.append(
            PairOutcome(
                e.name,
                _detections(name, frame, both.curves),
                _detections(name, frame, both.deployed),
                both.deployed.defects,
            )
        )
        if progress is not None:
            progress(i + 1, len(entries))
    return out


def thresholds_of(loaded: LoadedRecipe) -> dict[int, float]:
    r = loaded.recipe
    return {
        cid: r.rule_for(name).score
        for cid, name in enumerate(DEFECT_CLASSES, start=1)
        if r.rule_for(name).action != "ignore"
    }


def write_pr_plot(report: Report, path: Path) -> None:
    """Precision-recall curves per class at IoU 0.33, with AP in the legend."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=120)
    for name, curve in report.curves33.items():
        if curve.n_truth:
            ax.plot(curve.recall, curve.precision, label=f"{name} AP {curve.ap:.3f}")
    m = report.as_json()
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1.01),
        ylim=(0, 1.01),
        title=f"PR at IoU>0.33: mAP {m['map33']:.3f}, F {m['f_score']:.3f} ({m['images']} images)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _errors(img: ImageDetections, thresholds: dict[int, float]) -> int:
    from aoi.metrics import operating_point

    p = operating_point([img], thresholds, 0.33)
    return p.fp + p.fn


def _bgr(image: np.ndarray) -> np.ndarray:
    """A grey or BGR image as 8-bit BGR to draw in colour on."""
    image = to_mono8(image) if image.dtype != np.uint8 else image
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()


def write_worst_overlay(
    entries: Sequence[SplitEntry],
    images: Sequence[ImageDetections],
    thresholds: dict[int, float],
    path: Path,
    count: int = 6,
) -> list[str]:
    """The images with most misses + false calls: truth in green, detections in red."""
    ranked = sorted(range(len(images)), key=lambda i: -_errors(images[i], thresholds))[:count]
    tiles = []
    for i in ranked:
        img = _bgr(read_image(entries[i].test))
        d = images[i]
        truth = d.truth
        for (x0, y0, x1, y1), name in zip(
            truth.bbox_xyxy_px.tolist(), truth.class_names, strict=True
        ):
            cv2.rectangle(img, (x0, y0), (x1, y1), (0, 170, 0), 2)
            cv2.putText(
                img,
                name,
                (x0, max(10, y0 - 3)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (0, 130, 0),
                1,
            )
        for det in d.detections:
            if det.score < thresholds.get(det.class_id, 1.0):
                continue
            x0, y0, x1, y1 = det.bbox_xyxy_px
            cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 230), 1)
            cv2.putText(
                img,
                f"{det.class_name} {det.score:.2f}",
                (x0, y1 + 12),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (0, 0, 200),
                1,
            )
        cv2.putText(
            img,
            f"{d.name}: {_errors(d, thresholds)} errors",
            (8, 20),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (200, 0, 0),
            2,
        )
        tiles.append(cv2.resize(img, (480, 480), interpolation=cv2.INTER_AREA))
    while len(tiles) % 3:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[k : k + 3]) for k in range(0, len(tiles), 3)]
    cv2.imwrite(str(path), np.vstack(rows))
    return [images[i].name for i in ranked]


def cmd_eval(args: argparse.Namespace) -> int:
    # With --model the recipe's own model file need not exist (it may not be built yet).
    loaded = load_recipe(find_recipe(args.recipe), check_files=not args.model)
    if args.model:
        model = Path(args.model)
        settings = loaded.recipe.model.model_copy(update={"path": model.resolve()})
        loaded = LoadedRecipe(
            loaded.recipe.model_copy(update={"model": settings}), loaded.path, loaded.content_hash
        )
    entries = read_split(Path(args.data), Path(args.split))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wide = curve_recipe(loaded)
    # The pairs bring their own frames: a rig without a source, on the default station config.
    rig = Rig(loaded, StationConfig(), source_spec=None, backend=args.backend)
    backend = rig.backend

    def reporter(what: str) -> Callable[[int, int], None]:
        t0 = time.monotonic()

        def progress(done: int, total: int) -> None:
            if done % 50 == 0 or done == total:
                rate = done / max(1e-9, time.monotonic() - t0)
                print(f"[eval] {what} {done}/{total}  {rate:.1f}/s", file=sys.stderr, flush=True)

        return progress

    free = None
    with rig:
        inspector = OnePass(backend, rig.template, loaded, wide, rig.pipeline.ids)
        pairs = run_split(inspector, entries, reporter("pairs"))
        if args.defect_free:
            if loaded.recipe.registration.method == "none":
                msg = (
                    f"{loaded.path}: --defect-free registers every board: registration.method "
                    "must be 'patches' or 'ecc', got 'none'"
                )
                raise AoiError(msg)
            templates = [e.template for e in entries]
            free = run_defect_free(
                loaded,
                backend,
                templates,
                args.defect_free,
                Disturbance(),
                reporter("defect-free boards"),
                read_grey,
            )
    thresholds = thresholds_of(loaded)
    names = {cid: DEFECT_CLASSES[cid - 1] for cid in thresholds}
    images = [p.curves for p in pairs]
    deployed = [p.deployed for p in pairs]
    report = evaluate(images, names, thresholds, deployed=deployed)
    result = report.as_json()
    write_pr_plot(report, out / "pr_curve.png")
    worst = write_worst_overlay(entries, deployed, thresholds, out / "worst_cases.png")
    result.update(model=str(loaded.model_path), model_hash=backend.model_hash, worst=worst)
    network = inspector.network  # every model's runs (an ensemble's too), each scale one
    result["network_passes"] = network.calls + sum(m.calls for m in network.members)
    print(f"{'class':<16} {'AP@.33':>7} {'AP50':>7} {'AP.5:.95':>9} {'truth':>6}")
    for name, pc in result["per_class"].items():  # type: ignore[union-attr]
        print(
            f"{name:<16} {pc['ap33']:7.4f} {pc['ap50']:7.4f} {pc['ap50_95']:9.4f} {pc['truth']:6d}"
        )
    print(
        f"mAP@.33 {result['map33']:.4f}  AP50 {result['ap50']:.4f}  "
        f"mAP@[.5:.95] {result['map50_95']:.4f}"
    )
    print(
        f"at the recipe's thresholds: precision {result['precision']:.4f}  "
        f"recall {result['recall']:.4f}  F-score {result['f_score']:.4f}"
    )
    print(f"plots: {out / 'pr_curve.png'}, {out / 'worst_cases.png'}")
    if args.export:
        curves, called = export_results(
            Path(args.export),
            [(p.name, p.curves.detections) for p in pairs],
            [(p.name, p.called) for p in pairs],
        )
        result["export"] = {"curves": str(curves.zip_path), "deployed": str(called.zip_path)}
        print(
            f"DeepPCB result format: {curves.zip_path} ({curves.detections} detections down to "
            f"{CURVE_FLOOR}, for mAP), {called.zip_path} ({called.detections} defects at the "
            "recipe's thresholds, for P/R/F); score with the benchmark's evaluation/script.py "
            "-s=<zip> -g=gt.zip"
        )
    if free is not None:
        result["defect_free"] = free.as_json()
        print(
            f"defect-free boards: {free.boards}  false calls {free.false_calls} "
            f"({free.false_calls / max(free.boards, 1):.4f})  review only {free.review_only}  "
            f"registration errors {free.errors}"
        )
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


def add_eval_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("eval", help="evaluate the model on an annotated DeepPCB-layout split")
    p.add_argument("--data", required=True, help="the PCBData folder")
    p.add_argument("--split", required=True, help="split list (trainval.txt format)")
    p.add_argument("--model", default=None, help="ONNX model (default: the recipe's)")
    p.add_argument("--recipe", default=DEFAULT_RECIPE, help="recipe whose thresholds apply")
    p.add_argument(
        "--backend",
        choices=BackendName.choices(),
        default="auto",
        help="inference backend (default auto)",
    )
    p.add_argument("--out", default="eval-out", help="folder for the PR plot and overlays")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on the last line")
    p.add_argument(
        "--export",
        default=None,
        metavar="DIR",
        help="also write the detections in DeepPCB's result format (<image name>.txt per image, "
        "zipped for the benchmark's evaluation script), at the curve floor and as deployed",
    )
    p.add_argument(
        "--defect-free",
        type=int,
        default=0,
        metavar="N",
        help="also inspect N defect-free boards (the split's templates against moved, noisy "
        "copies of themselves, through registration) and count false calls",
    )
    p.set_defaults(func=cmd_eval)
