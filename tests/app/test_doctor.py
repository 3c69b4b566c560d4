"""``aoi doctor`` and ``aoi build-engine`` (aoi/app/): wiring, reports, a PC without TensorRT."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from aoi.app.doctor import doctor_report, model_notices, parse_nvidia_smi
from aoi.app.engines import cmd_build_engine
from aoi.cli import build_parser
from aoi.errors import ModelError

RecipeFactory = Callable[..., Path]
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_aoi_wires_both_commands() -> None:
    args = build_parser().parse_args(["doctor", "--parity", "board-a-640", "--json"])
    assert (args.parity, args.json, args.func.__module__) == ("board-a-640", True, "aoi.app.doctor")
    args = build_parser().parse_args(["build-engine", "--recipe", "a", "--recipe", "b"])
    assert (args.recipe, args.func) == (["a", "b"], cmd_build_engine)


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed: the missing-TensorRT path is moot")
def test_build_engine_without_tensorrt_names_the_fix(make_recipe: RecipeFactory) -> None:
    parser = build_parser()
    args = parser.parse_args(["build-engine", "--recipe", str(make_recipe())])
    with pytest.raises(ModelError, match=r"pip install 'aoi-station\[gpu\]'"):
        cmd_build_engine(args)
    with pytest.raises(ModelError, match="needs --recipe NAME"):
        cmd_build_engine(parser.parse_args(["build-engine"]))


def test_parse_nvidia_smi() -> None:
    text = "0, NVIDIA H100 80GB HBM3, 9.0, 580.65.06, 81559\n\nnot, a, row\n"
    assert parse_nvidia_smi(text) == [
        {
            "index": "0",
            "name": "NVIDIA H100 80GB HBM3",
            "compute_cap": "9.0",
            "driver_version": "580.65.06",
            "memory.total": "81559",
        }
    ]


def test_doctor_reports_every_part_in_plain_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AOI_ENGINE_DIR", str(tmp_path / "engines"))
    report = doctor_report(None, None, data_dir=tmp_path / "data")
    assert set(report) == {
        "tensorrt",
        "cuda",
        "gpu",
        "nvidia_smi",
        "onnxruntime",
        "genicam",
        "engine_cache",
        "backend_auto",
        "malloc",
        "frame_memory",
        "registration",
        "preflight",
        "model_terms",
    }
    names = [c["name"] for c in report["preflight"]]
    assert names[:2] == ["data", "database"] and "recipe" in names and "camera" in names
    assert report["engine_cache"] == {
        "folder": str(tmp_path / "engines"),
        "exists": False,
        "engines": [],
    }
    assert report["tensorrt"]["ok"] == HAS_TRT
    assert report["backend_auto"]["backend"] in {"tensorrt", "onnxruntime", "onnxruntime-cuda"}
    assert type(report["backend_auto"]["backend"]) is str
    json.dumps(report)


def test_doctor_prints_the_default_recipes_model_and_its_data_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AOI_ENGINE_DIR", str(tmp_path / "engines"))
    args = build_parser().parse_args(["doctor", "--data-dir", str(tmp_path / "data"), "--json"])
    args.func(args)
    out = capsys.readouterr().out.splitlines()
    notices = [line for line in out if line.startswith("model terms")]
    # The default recipe's model comes first, with the DeepPCB research-use limit spelled out.
    first = notices[0]
    assert "board-a-640 (default)" in first
    assert first.startswith("model terms    aoi-defect-v2.onnx (board-a-640 (default), ")
    assert "trained on DeepPCB" in first
    assert "RESEARCH USE ONLY" in first and "LICENSE file is MIT" in first
    assert any("aoi-defect-v3.onnx" in line and "deeppcb-640" in line for line in notices)
    report = json.loads(out[-1])
    assert report["model_terms"][0]["research_only"] is True


def test_a_model_without_an_entry_is_said_to_have_no_stated_training_data(
    tmp_path: Path, make_recipe: RecipeFactory
) -> None:
    recipe = make_recipe()  # its model is a test-built network beside it, with no table
    notices = model_notices(recipe.parent)
    assert "(default)" in notices[0]["recipes"][0] and notices[0]["known"] is True
    own = next(n for n in notices if n["model"].endswith("difference.onnx"))
    assert own["known"] is False
    assert own["line"].startswith("difference.onnx (")
    assert "training data not stated" in own["line"]
