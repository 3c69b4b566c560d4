"""The ``aoi`` command line: bench and run print the summary the issue specifies."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from aoi.cli import main

RecipeFactory = Callable[..., Path]

SUMMARY_KEYS = {
    "cycles",
    "verdicts",
    "cycle_ms",
    "stages_ms",
    "over_budget",
    "backend",
    "recipe",
    "recipe_hash",
    "model_hash",
}


def _last_json(out: str) -> dict[str, object]:
    return json.loads(out.strip().splitlines()[-1])


def _defective_boards(recipe: Path, cycles: int) -> int:
    """How many of the recipe's first ``cycles`` synthetic boards carry a defect (the truth)."""
    from aoi.recipe import load_recipe
    from aoi.sources.synthetic import SyntheticSource

    loaded = load_recipe(recipe)
    template = cv2.imread(str(loaded.template_path), cv2.IMREAD_GRAYSCALE)
    with SyntheticSource(template, loaded.recipe.synthetic) as source:
        truths = [source.grab().truth for _ in range(cycles)]
    return sum(t is not None and t.is_defective for t in truths)


def test_bench_prints_one_json_summary_on_the_last_line(
    make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = make_recipe()
    cycles = 12
    args = ["bench", "--recipe", str(recipe), "--cycles", str(cycles), "--json"]
    assert main(args) == 0
    summary = _last_json(capsys.readouterr().out)
    assert SUMMARY_KEYS | {"board_accuracy"} <= set(summary)
    assert summary["cycles"] == cycles
    # The difference model flags exactly the boards the synthetic source made defective, so
    # every verdict matches the truth the source knows.
    ng = _defective_boards(recipe, cycles)
    assert 0 < ng < cycles, "the stream mixes good and defective boards"
    assert summary["verdicts"] == {"OK": cycles - ng, "NG": ng, "REVIEW": 0, "ERROR": 0}
    assert summary["board_accuracy"] == 1.0
    # The same seed gives the same boards and the same verdicts.
    assert main(args) == 0
    again = _last_json(capsys.readouterr().out)
    assert (again["verdicts"], again["board_accuracy"]) == (summary["verdicts"], 1.0)
    assert summary["backend"] == "onnxruntime-cpu"
    assert summary["recipe"] == "test-board"
    for stage in ("acquire", "register", "preprocess", "infer", "postprocess", "decide"):
        p = summary["stages_ms"][stage]  # type: ignore[index]
        assert p["p50"] <= p["p99"] <= p["max"]
    # What the speed costs in memory: this process's peak so far (it ran the network twice),
    # and what malloc does (a CPU rig raised the thresholds: aoi/heap.py).
    import resource

    from aoi import heap

    memory = summary["memory"]  # type: ignore[index]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert 50 < memory["peak_rss_mb"] <= peak_mb + 0.1
    assert memory["malloc"] == heap.status()
    assert summary["frames"] == "heap"  # a CPU station's frames: ordinary memory


def test_run_on_a_replay_folder_reports_errors_for_bad_files(
    make_recipe: RecipeFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = make_recipe()
    template = cv2.imread(str(tmp_path / "test-board.png"), cv2.IMREAD_GRAYSCALE)
    folder = tmp_path / "replay"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), template)
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    cv2.imwrite(str(folder / "c.png"), np.zeros((100, 100), np.uint8))  # wrong size
    args = ["run", "--recipe", str(recipe), "--source", f"replay:{folder}", "--json"]
    assert main(args) == 0
    summary = _last_json(capsys.readouterr().out)
    assert summary["cycles"] == 3
    assert summary["verdicts"] == {"OK": 1, "NG": 0, "REVIEW": 0, "ERROR": 2}
    assert "board_accuracy" not in summary, "a plain folder knows no truth"


def test_bad_recipe_exits_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("schema_version = 1\n")
    assert main(["run", "--recipe", str(bad), "--cycles", "1"]) == 2
    err = capsys.readouterr().err
    assert "bad.toml: name is required but missing" in err


def test_unknown_source_exits_with_a_message(
    make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--recipe", str(make_recipe()), "--source", "usb", "--cycles", "1"]) == 2
    assert "source must be synthetic | replay:DIR | genicam" in capsys.readouterr().err


@pytest.mark.integration  # a subprocess, as the console script runs
def test_console_script_runs_the_embedded_default(tmp_path: Path) -> None:
    """`aoi run --cycles N` with nothing else: shipped recipe, synthetic boards, ONNX Runtime."""
    proc = subprocess.run(
        [sys.executable, "-m", "aoi.cli", "run", "--cycles", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    summary = _last_json(proc.stdout)
    assert summary["recipe"] == "board-a-640"
    assert summary["source"] == "synthetic"
    assert summary["cycles"] == 3
    assert "READY" in proc.stderr


def test_bench_with_a_database_logs_every_inspection_and_report_reads_them(
    make_recipe: RecipeFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'log.db'}"
    recipe = str(make_recipe())
    assert main(["bench", "--recipe", recipe, "--cycles", "8", "--db", db, "--json"]) == 0
    summary = _last_json(capsys.readouterr().out)
    storage = summary["storage"]
    assert storage["published"] == storage["committed"] == 8  # type: ignore[index]
    assert storage["lost"] == 0  # type: ignore[index]
    assert main(["report", "--db", db, "--since", "1h", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = report["by_recipe"]
    assert row["group"] == "test-board"
    assert row["total"] == 8
    verdicts = summary["verdicts"]
    assert (row["ok"], row["ng"]) == (verdicts["OK"], verdicts["NG"])  # type: ignore[index]


def test_bench_without_a_database_logs_nothing(
    make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--recipe", str(make_recipe()), "--cycles", "2", "--json"]) == 0
    assert "storage" not in _last_json(capsys.readouterr().out)
