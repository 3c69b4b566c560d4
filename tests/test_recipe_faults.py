"""Corrupt recipe files end in a RecipeError naming file, field, expected and found.

Issue 12: a NUL byte or a 300-character name in a recipe path, a ``*.toml`` nesting arrays
2,000 deep, a path the OS cannot read (``/proc/self/mem``) once killed the station process
while the PLC waited for CMD_DONE, and stopped a multi-file ``aoi recipe validate``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aoi.app.recipes import recipe_for_product_code
from aoi.cli import main
from aoi.errors import RecipeError
from aoi.recipe import load_recipe
from aoi.recipe.nesting import MAX_NESTING, check_nesting

pytestmark = pytest.mark.fault

RecipeFactory = Callable[..., Path]

DEEP_ARRAY = "[" * 2000 + "]" * 2000
DEEP_TABLE = "{a = " * 2000 + "1" + "}" * 2000


def _replace_line(path: Path, key: str, value: str) -> None:
    """Set the top-level or [model] line ``key = ...`` to ``key = value`` (raw TOML text)."""
    lines = path.read_text().splitlines()
    hits = [i for i, line in enumerate(lines) if line.split("=")[0].strip() == key]
    assert len(hits) == 1, (key, lines)
    lines[hits[0]] = f"{key} = {value}"
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("key", "value", "field", "expected"),
    [
        ("path", r'"model\u0000.onnx"', "model.path", "without NUL bytes"),
        ("template", r'"tpl\u0000.png"', "template", "without NUL bytes"),
        ("path", '"' + "m" * 300 + '.onnx"', "model.path", "names of at most 255 bytes"),
        ("template", '"' + "t" * 300 + '.png"', "template", "names of at most 255 bytes"),
        ("path", '"' + "d/" * 2100 + 'm.onnx"', "model.path", "at most 4095 bytes"),
        ("calibration_dir", r'"cal\u0000"', "model.calibration_dir", "without NUL bytes"),
    ],
)
@pytest.mark.parametrize("check_files", [False, True])
def test_a_path_the_os_refuses_is_a_recipe_error_naming_the_field(
    make_recipe: RecipeFactory, key: str, value: str, field: str, expected: str, check_files: bool
) -> None:
    path = make_recipe()
    if key == "calibration_dir":
        path.write_text(path.read_text().replace("[model]\n", '[model]\ncalibration_dir = "c"\n'))
    _replace_line(path, key, value)
    with pytest.raises(RecipeError) as info:
        load_recipe(path, check_files=check_files)
    text = str(info.value)
    assert text.startswith(f"{path}: {field}: must "), text
    assert expected in text
    assert "found" in text


@pytest.mark.parametrize("nested", [DEEP_ARRAY, DEEP_TABLE])
def test_toml_nested_2000_deep_is_a_recipe_error_naming_line_and_key(
    make_recipe: RecipeFactory, nested: str
) -> None:
    path = make_recipe()
    text = path.read_text()
    path.write_text(f"deep = {nested}\n{text}")
    with pytest.raises(RecipeError) as info:
        load_recipe(path, check_files=False)
    assert str(info.value).startswith(f"{path}: line 1: deep must nest arrays and inline tables")
    assert f"at most {MAX_NESTING} deep" in str(info.value)


def test_nesting_scan_ignores_brackets_in_strings_and_comments() -> None:
    brackets = "[" * (MAX_NESTING + 5)
    text = (
        f"a = \"{brackets}\"\nb = '{brackets}'\n# {brackets}\n"
        f'c = """\n{brackets}\\"""\n"""\nd = \'\'\'{brackets}\'\'\'\n'
        f"e = {'[' * MAX_NESTING}{']' * MAX_NESTING}\n"
    )
    check_nesting(text, "ok.toml")  # exactly MAX_NESTING deep, brackets in strings ignored
    with pytest.raises(RecipeError, match=r"bad\.toml: line 9: f must nest"):
        check_nesting(text + f"f = {'[' * (MAX_NESTING + 1)}\n", "bad.toml")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="Linux /proc")
@pytest.mark.parametrize(("key", "field"), [("path", "model.path"), ("template", "template")])
def test_a_file_that_fails_to_read_is_a_recipe_error(
    make_recipe: RecipeFactory, key: str, field: str
) -> None:
    path = make_recipe()
    _replace_line(path, key, '"/proc/self/mem"')
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {field} must name a readable file, reading /proc/self/mem")
    assert "Errno 5" in text


def _bad_recipes(folder: Path, good: Path) -> dict[str, str]:
    """Recipes in ``folder`` that a lookup must skip, by file name: what each error names."""
    bad = {
        "nul.toml": ("path", r'"m\u0000.onnx"', "model.path"),
        "long.toml": ("path", '"' + "m" * 300 + '.onnx"', "model.path"),
    }
    for name, (key, value, _field) in bad.items():
        copy = folder / name
        copy.write_text(good.read_text().replace("product_code = 7", "product_code = 9"))
        _replace_line(copy, key, value)
    (folder / "deep.toml").write_text(f"x = {DEEP_ARRAY}\n")
    return {**{name: field for name, (_k, _v, field) in bad.items()}, "deep.toml": "line 1: x"}


def test_one_bad_file_never_breaks_the_lookup_of_the_others(make_recipe: RecipeFactory) -> None:
    good = make_recipe()
    bad = _bad_recipes(good.parent, good)
    # As the station's LOAD_RECIPE does it: find by product code, then load with the files.
    found = recipe_for_product_code(7, good.parent)
    assert found == good
    # The code the broken files claim: the first one's own error, naming file and field.
    with pytest.raises(RecipeError, match=r"long\.toml: model\.path: must have file and folder"):
        recipe_for_product_code(9, good.parent)
    assert load_recipe(found).name == "test-board"
    for name, field in bad.items():
        with pytest.raises(RecipeError) as info:
            load_recipe(good.parent / name)
        assert f"{good.parent / name}: {field}" in str(info.value)


def test_validate_reports_every_file_of_a_multi_file_run(
    make_recipe: RecipeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    good = make_recipe()
    bad = _bad_recipes(good.parent, good)
    paths = [good.parent / name for name in bad]
    assert main(["recipe", "validate", "--schema-only", *map(str, [*paths, good])]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len([line for line in out if line.startswith("INVALID")]) == len(bad)
    assert out[-1].startswith(f"ok      {good}: test-board")
    for path, field in zip(paths, bad.values(), strict=True):
        assert any(line.startswith(f"INVALID {path}: {field}") for line in out), out
