"""``aoi recipe new``, ``template --from-image``, duplicate product codes, ``schema``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tomlkit")

from aoi.app.golden import check_alignment
from aoi.app.recipes import duplicate_product_codes
from aoi.cli import main
from aoi.recipe import RegistrationSettings, load_recipe, recipes_dir
from aoi.sources.synthetic.boardgen import golden_board


def test_new_recipe_is_a_commented_copy_with_a_free_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    monkeypatch.setenv("AOI_RECIPES_DIR", str(site))
    assert main(["recipe", "new", "board-x", "--from", "board-a-640"]) == 0
    path = site / "board-x.toml"
    shipped = (recipes_dir() / "board-a-640.toml").read_text(encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    comments = [line for line in shipped.splitlines() if line.startswith("#")]
    assert comments and all(c in text for c in comments), "the copy keeps every comment"
    loaded = load_recipe(path)  # the template copy and the model are found from the new folder
    assert loaded.name == "board-x" and loaded.recipe.version == 1
    codes = {
        load_recipe(p, check_files=False).recipe.product_code for p in recipes_dir().glob("*.toml")
    }
    assert loaded.recipe.product_code not in codes
    assert loaded.template_path == (site / "templates" / "board-x.png").resolve()
    assert (
        main(
            [
                "recipe",
                "new",
                "board-y",
                "--from",
                "board-x",
                "--product-code",
                str(loaded.recipe.product_code),
            ]
        )
        != 0
        or False
    )
    assert not (site / "board-y.toml").exists(), "a taken code is refused"


def test_validate_names_both_files_of_a_duplicate_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AOI_RECIPES_DIR", str(tmp_path))
    assert main(["recipe", "new", "one", "--from", "board-a-640", "--product-code", "900"]) == 0
    (tmp_path / "two.toml").write_text(
        (tmp_path / "one.toml").read_text(encoding="utf-8").replace('"one"', '"two"'),
        encoding="utf-8",
    )
    dups = duplicate_product_codes(sorted(tmp_path.glob("*.toml")))
    assert [(d.product_code, [f.name for f in d.files]) for d in dups] == [
        (900, ["one.toml", "two.toml"])
    ]
    capsys.readouterr()
    assert main(["recipe", "validate", "--schema-only", str(tmp_path / "one.toml")]) == 1
    out = capsys.readouterr().out
    assert "product code 900" in out and "one.toml" in out and "two.toml" in out


def test_schema_lists_every_field_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipe", "schema"]) == 0
    out = capsys.readouterr().out.splitlines()
    fields = out[0::2]
    descriptions = out[1::2]
    assert any(f.startswith("registration.min_correlation") for f in fields)
    assert any(f.startswith("classes.CLASS.review_score") for f in fields)
    assert all(d.strip() for d in descriptions), "every field is described"


def test_template_from_a_board_image_then_alignment_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AOI_RECIPES_DIR", str(tmp_path))
    assert main(["recipe", "new", "real", "--from", "board-a-640"]) == 0
    board = golden_board(640, 640, 5, "binary")
    moved = np.roll(board, (2, 3), axis=(0, 1))
    cv2.imwrite(str(tmp_path / "board.png"), board)
    cv2.imwrite(str(tmp_path / "second.png"), moved)
    capsys.readouterr()
    argv = ["recipe", "template", "real", "--from-image", str(tmp_path / "board.png")]
    assert main([*argv, "--check", str(tmp_path / "second.png")]) == 0
    out = capsys.readouterr().out
    assert "Aligned" in out and "+3.0 px across" in out and "+2.0 px down" in out
    written = cv2.imread(str(tmp_path / "templates" / "real.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(written, board)
    # A different board does not align: the words say what to check, not OpenCV's.
    other = golden_board(640, 640, 77, "binary")
    check = check_alignment(board, np.zeros_like(other), RegistrationSettings())
    assert not check.ok and "fixture, lit, and the right product" in check.text


def test_a_board_image_cut_short_is_refused_as_a_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """OpenCV decodes a cut-off PNG with its missing rows grey: never the golden board."""
    monkeypatch.setenv("AOI_RECIPES_DIR", str(tmp_path))
    assert main(["recipe", "new", "real", "--from", "board-a-640"]) == 0
    before = (tmp_path / "templates" / "real.png").read_bytes()
    ok, png = cv2.imencode(".png", golden_board(640, 640, 5, "binary"))
    assert ok
    cut = tmp_path / "cut.png"
    cut.write_bytes(png.tobytes()[: int(png.size * 0.85)])
    capsys.readouterr()
    assert main(["recipe", "template", "real", "--from-image", str(cut)]) == 2
    err = capsys.readouterr().err
    assert str(cut) in err and "expected the whole file" in err
    assert (tmp_path / "templates" / "real.png").read_bytes() == before, "template untouched"
