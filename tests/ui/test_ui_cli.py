"""``aoi gui`` is mounted through the ``aoi.commands`` entry point; its screenshot mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aoi.cli import main

RecipeFactory = Callable[..., Path]

SCREENS = [
    "camera.png",
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
