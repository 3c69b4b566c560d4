"""`aoi eval` on real DeepPCB trainval pairs: one network pass read twice, the export in
DeepPCB's result format, and a split with colour JPEGs in it (skipped without
../shared/data/deeppcb)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.app.eval_export import DEEPPCB_TYPES, read_result_file
from aoi.app.evaluation import (
    SplitEntry,
    add_eval_parser,
    curve_recipe,
    read_grey,
    read_split,
    thresholds_of,
)
from aoi.metrics import ImageDetections, evaluate, operating_point
from aoi.pipeline import Pipeline
from aoi.recipe import load_recipe
from aoi.sources.replay import read_annotation
from aoi.types import DEFECT_CLASSES, Defects, Frame

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "deeppcb-640.toml"
#: A result line as DeepPCB's README asks for it: no space, the type as a word.
LINE = re.compile(
    r"^(\d+),(\d+),(\d+),(\d+),(\d+(?:\.\d+)?),(open|short|mousebite|spur|copper|pin-hole)$"
)
#: A pair whose test and template are both 3-channel JPEGs in DeepPCB's trainval.
COLOUR_PAIR = "group00041/00041/00041003.jpg group00041/00041_not/00041003.txt"


def _eval(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    ns = parser.parse_args(["eval", *args])
    assert ns.func(ns) == 0
    out = capsys.readouterr().out
    return json.loads(out.strip().splitlines()[-1]), out


def _trainval_lines(deeppcb: Path, picks: tuple[int, ...]) -> list[str]:
    lines = (deeppcb / "PCBData" / "trainval.txt").read_text().splitlines()
    return [lines[i] for i in picks]


def _parse(path: Path) -> Defects:
    names = {v: k for k, v in DEEPPCB_TYPES.items()}
    rows = []
    for line in path.read_text(encoding="ascii").splitlines():
        m = LINE.match(line)
        assert m is not None, f"{path.name}: {line!r} is not x1,y1,x2,y2,confidence,type"
        rows.append(m.groups())
    boxes = np.array([[int(v) for v in r[:4]] for r in rows], np.int32).reshape(-1, 4)
    scores = np.array([float(r[4]) for r in rows], np.float32)
    ids = np.array([DEFECT_CLASSES.index(names[r[5]]) + 1 for r in rows], np.int32)
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    return Defects(boxes, ids, scores, areas.astype(np.int64))


def _key(d: Defects) -> list[tuple[int, int, int, int, int, float]]:
    return sorted(
        (*map(int, box), int(c), float(s))
        for box, c, s in zip(d.bbox_xyxy_px.tolist(), d.class_ids, d.scores, strict=True)
    )


@pytest.mark.slow
def test_one_pass_gives_the_deployed_pipeline_and_exports_deeppcb_format(
    deeppcb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = deeppcb_dir / "PCBData"
    split = tmp_path / "split.txt"
    split.write_text("\n".join(_trainval_lines(deeppcb_dir, (0, 310, 620, 930))) + "\n")
    export = tmp_path / "export"
    args = ["--data", str(data), "--split", str(split), "--recipe", str(RECIPE)]
    args += ["--backend", "onnxruntime", "--out", str(tmp_path / "out"), "--json"]
    result, _ = _eval([*args, "--export", str(export)], capsys)
    entries = read_split(data, split)
    assert result["images"] == 4
    assert result["network_passes"] == 4  # one per pair (a 640 px pair is one batch)

    # The deployed pipeline and the curve pipeline run separately, the network twice per pair:
    # the one-pass figures must be theirs exactly.
    loaded = load_recipe(RECIPE)
    from aoi.inference.onnxruntime import OnnxRuntimeBackend

    profile = loaded.recipe.geometry.profile
    with OnnxRuntimeBackend(loaded.model_path, profile) as backend:
        template = read_grey(entries[0].template)
        deployed_pipe = Pipeline(loaded, backend, template=template)
        curve_pipe = Pipeline(curve_recipe(loaded), backend, template=template)
        deployed, curves, called = [], [], {}
        for i, e in enumerate(entries):
            frame = Frame(
                image=read_grey(e.test),
                frame_id=i,
                available_ns=0,
                source="test",
                name=e.test.stem,
                template=read_grey(e.template),
                truth=read_annotation(e.annotation),
            )
            d, c = deployed_pipe.inspect(frame), curve_pipe.inspect(frame)
            assert not d.error and not c.error
            assert frame.truth is not None
            deployed.append(
                ImageDetections(e.name, frame.truth, Defects.merge([d.defects, d.review_defects]))
            )
            curves.append(
                ImageDetections(e.name, frame.truth, Defects.merge([c.defects, c.review_defects]))
            )
            called[e.name] = d.defects
    thresholds = thresholds_of(loaded)
    point = operating_point(deployed, thresholds, 0.33)
    assert point.tp > 0
    assert result["precision"] == round(point.precision, 4)
    assert result["recall"] == round(point.recall, 4)
    assert result["f_score"] == round(point.f_score, 4)
    names = {cid: DEFECT_CLASSES[cid - 1] for cid in thresholds}
    separate = evaluate(curves, names, thresholds, deployed=deployed).as_json()
    assert result["map33"] == separate["map33"]
    assert result["per_class"] == separate["per_class"]

    # The export: one <image name>.txt per image, each line parseable, boxes the station's.
    for folder in ("deployed", "curves"):
        files = sorted(p.name for p in (export / folder).iterdir())
        assert files == sorted(f"{e.name}.txt" for e in entries)
    for e in entries:
        got = _parse(export / "deployed" / f"{e.name}.txt")
        assert _key(got) == _key(called[e.name])
        # The project's own reader (the tools that rescore exports) reads what the format says.
        assert _key(read_result_file(export / "deployed" / f"{e.name}.txt")) == _key(got)
        assert len(got) > 0
    # Rescoring the exported files gives the printed figures: what the benchmark's script reads.
    truths = {e.name: read_annotation(e.annotation) for e in entries}
    wide = [ImageDetections(n, truths[n], _parse(export / "curves" / f"{n}.txt")) for n in truths]
    rescored = evaluate(wide, names, thresholds).as_json()
    assert rescored["map33"] == result["map33"]
    assert len(wide[0].detections) >= len(called[entries[0].name])
    # The zips: the .txt files at the zip's root (no sub-directory), the same bytes.
    for folder, zip_name in (("deployed", "res_deployed.zip"), ("curves", "res_curves.zip")):
        with zipfile.ZipFile(export / zip_name) as archive:
            assert archive.testzip() is None
            assert sorted(archive.namelist()) == sorted(f"{e.name}.txt" for e in entries)
            for name in archive.namelist():
                assert archive.read(name) == (export / folder / name).read_bytes()
    assert result["export"]["deployed"] == str(export / "res_deployed.zip")


@pytest.mark.slow
def test_eval_with_colour_images_finishes_and_prints_metrics(
    deeppcb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = deeppcb_dir / "PCBData"
    grey_line = _trainval_lines(deeppcb_dir, (0,))[0]
    grey = read_split(src, _write(tmp_path / "one.txt", [grey_line]))[0]
    colour = read_split(src, _write(tmp_path / "two.txt", [COLOUR_PAIR]))[0]
    assert cv2.imread(str(colour.test), cv2.IMREAD_UNCHANGED).ndim == 3  # a real colour JPEG
    # The PCBData copy: the real colour pair, a grey pair, and that grey pair as colour PNGs.
    data = tmp_path / "PCBData"
    lines = []
    for entry, ident, as_colour in ((colour, "90000000", False), (grey, "90000001", False)):
        lines.append(_copy_pair(entry, data, ident, as_colour, ".jpg"))
    lines.append(_copy_pair(grey, data, "90000002", True, ".png"))
    split = _write(tmp_path / "split.txt", lines)
    out, export = tmp_path / "out", tmp_path / "export"
    args = ["--data", str(data), "--split", str(split), "--recipe", str(RECIPE)]
    args += ["--backend", "onnxruntime", "--out", str(out), "--json", "--export", str(export)]
    result, printed = _eval(args, capsys)
    assert result["images"] == 3
    assert "mAP@.33" in printed and "F-score" in printed
    assert 0.0 < result["f_score"] <= 1.0
    assert set(result["worst"]) == {"90000000_test", "90000001_test", "90000002_test"}
    overlay = cv2.imread(str(out / "worst_cases.png"))
    assert overlay is not None and overlay.shape == (480, 1440, 3)
    # The colour copy is read as the grey pair it was made from: the same detections.
    same = (export / "curves" / "90000001.txt").read_text()
    assert same and same == (export / "curves" / "90000002.txt").read_text()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _copy_pair(entry: SplitEntry, data: Path, ident: str, as_colour: bool, suffix: str) -> str:
    """The pair under ``data/group90000`` with a new id; as 3-channel images if asked."""
    images, notes = data / "group90000" / "90000", data / "group90000" / "90000_not"
    images.mkdir(parents=True, exist_ok=True)
    notes.mkdir(parents=True, exist_ok=True)
    for kind, path in (("test", entry.test), ("temp", entry.template)):
        target = images / f"{ident}_{kind}{suffix}"
        if as_colour:
            grey = read_grey(path)
            assert cv2.imwrite(str(target), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
        else:
            shutil.copyfile(path, target)
    shutil.copyfile(entry.annotation, notes / f"{ident}.txt")
    return f"group90000/90000/{ident}{suffix} group90000/90000_not/{ident}.txt"
