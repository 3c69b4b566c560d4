"""``aoi gui`` is mounted through the ``aoi.commands`` entry point; its screenshot mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aoi.cli import main

RecipeFactory = Callable[..., Path]

SCREENS = [
    "about.png",
    "alarm-history.png",
    "camera.png",
    "new-product-active.png",
    "new-product-template.png",
    "new-product.png",
    "operator-stopped.png",
    "operator.png",
    "recipe-editor.png",
    "recipe-invalid.png",
    "recipe-masks.png",
    "review.png",
    "users-audit.png",
]


def test_aoi_gui_is_a_subcommand_of_aoi(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["gui", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "--screenshot DIR" in out and "--bench N" in out


@pytest.mark.slow
def test_screenshot_mode_writes_a_png_of_every_screen(
    qapp: object, make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    recipe = make_recipe(registration="none")
    before = recipe.read_text(encoding="utf-8")
    out = tmp_path / "shots"
    args = ["gui", "--recipe", str(recipe), "--threads", "1"]
    assert main([*args, "--screenshot", str(out), "--cycles", "4"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == SCREENS
    assert all(p.stat().st_size > 10_000 for p in out.glob("*.png"))
    assert recipe.read_text(encoding="utf-8") == before, "screenshots never save edits"
    assert not (recipe.parent / "history").exists()


@pytest.mark.slow
def test_bench_mode_measures_both_sides_and_where_the_cpu_went(
    qapp: object, make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    recipe = make_recipe(registration="none")
    args = ["gui", "--recipe", str(recipe), "--threads", "1"]
    assert main([*args, "--bench", "4", "--blocks", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["detached"]["boards"] == summary["attached"]["boards"] == 8
    assert summary["p99_ratio"] == round(summary["attached"]["p99"] / summary["detached"]["p99"], 4)
    assert summary["frames_shown"] >= 1
    assert summary["cpu_s_by_thread"]["attached"], "per-thread CPU seconds were read"


def test_thread_cpu_is_attributed_to_the_thread_that_used_it() -> None:
    import threading
    import time

    from ui.offscreen import thread_cpu_s

    def burn() -> None:
        # CPU time, not wall time: on a loaded machine the burner takes longer, never less.
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        burnt.set()
        done.wait()

    burnt, done = threading.Event(), threading.Event()
    before = thread_cpu_s()
    worker = threading.Thread(target=burn, name="burner")
    worker.start()
    try:
        assert burnt.wait(60), "the burner never got its 0.3 CPU seconds (hang guard)"
        used = thread_cpu_s()  # the burner is alive and idle now, its CPU time final
    finally:
        done.set()
        worker.join()
    assert "burner" in used and "burner" not in before, "the thread is read under its own name"
    # /proc counts in clock ticks (10 ms): 0.3 s burnt reads as at least 0.25 s.
    assert used["burner"] >= 0.25, used
    # The main thread only waited on an event meanwhile: a blocked wait costs no CPU time.
    assert used["MainThread"] - before["MainThread"] < 0.1, (before, used)
    assert used["burner"] > 2 * (used["MainThread"] - before["MainThread"])
