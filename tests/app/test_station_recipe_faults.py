"""The PLC's LOAD_RECIPE against a recipes folder holding corrupt files: the station stays up.

Issue 12: a recipe whose model path had a NUL byte or a 300-character name, or any ``*.toml``
in the folder nesting arrays 2,000 deep, killed the station process with a traceback while the
PLC waited for CMD_DONE. Now the change fails with a RecipeError naming file and field (the link
answers RECIPE_LOAD_FAILED), the old recipe stays, and the other recipes still load.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aoi.app.station import Station, StationOptions
from aoi.errors import AoiError, RecipeError

pytestmark = [pytest.mark.integration, pytest.mark.fault]

RecipeFactory = Callable[..., Path]


def _copy(first: Path, name: str, code: int, model_line: str | None = None) -> Path:
    text = first.read_text().replace('name = "test-board"', f'name = "{name}"')
    text = text.replace("product_code = 7", f"product_code = {code}")
    if model_line is not None:
        lines = text.splitlines()
        row = next(i for i, line in enumerate(lines) if line.startswith("path = "))
        lines[row] = model_line
        text = "\n".join(lines) + "\n"
    path = first.with_name(f"{name}.toml")
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("model_line", "field"),
    [
        (r'path = "m\u0000.onnx"', "model.path: must be a file path without NUL bytes"),
        ('path = "' + "m" * 300 + '.onnx"', "model.path: must have file and folder names"),
    ],
)
def test_load_recipe_of_a_corrupt_recipe_fails_and_the_old_one_stays(
    make_recipe: RecipeFactory, tmp_path: Path, model_line: str, field: str
) -> None:
    first = make_recipe(registration="none")
    bad = _copy(first, "corrupt", 9, model_line)
    good = _copy(first, "test-board-b", 8)
    (first.parent / "deep.toml").write_text("x = " + "[" * 2000 + "]" * 2000 + "\n")
    options = StationOptions(recipe=str(first), data_dir=tmp_path / "data", plc="sim", threads=1)
    with Station(options) as station:
        assert station.plc is not None
        change = station.plc.link.on_recipe_change  # what the link calls on LOAD_RECIPE
        assert change is not None
        before = station.active_recipe
        with pytest.raises(RecipeError) as info:
            change(9)
        assert isinstance(info.value, AoiError), "the link answers it with RECIPE_LOAD_FAILED"
        assert str(info.value).startswith(f"{bad}: {field}")
        assert station.active_recipe is before, "the old recipe stays"
        active = change(8)
        assert active.name == "test-board-b", "one bad file does not break the lookup"
        assert station.active_recipe is not None
        assert station.active_recipe.path == good.resolve()
