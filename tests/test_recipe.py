"""Recipe schema: shipped recipes load, bad ones fail with file, field, expected and found."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w

from aoi.cli import main
from aoi.errors import RecipeError
from aoi.recipe import SCHEMA_VERSION, find_recipe, load_recipe, recipes_dir

SHIPPED = sorted(recipes_dir().glob("*.toml"))


def test_three_products_of_different_geometry_are_shipped() -> None:
    loaded = [load_recipe(p) for p in SHIPPED]
    shapes = {r.recipe.geometry.input_shape() for r in loaded}
    assert len(loaded) >= 3
    assert len(shapes) >= 3, shapes
    assert any(r.recipe.geometry.mode == "tiles" for r in loaded)
    codes = [r.recipe.product_code for r in loaded]
    assert len(set(codes)) == len(codes), "product codes must be unique"


def test_panel_is_cut_into_batched_tiles() -> None:
    g = load_recipe(find_recipe("panel-c-4096x3000")).recipe.geometry
    assert g.tile_count() == 15
    assert g.input_shape() == (8, 2, 1024, 1024)


def _edit(path: Path, tmp_path: Path, change: dict[str, object]) -> Path:
    raw = tomllib.loads(path.read_text())
    for dotted, value in change.items():
        node = raw
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node[k]
        if value is None:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    out = tmp_path / path.name
    raw["template"] = str(path.parent / raw["template"]) if "template" in raw else None
    raw["model"]["path"] = str((path.parent / raw["model"]["path"]).resolve())
    if raw["template"] is None:
        del raw["template"]
    out.write_text(tomli_w.dumps(raw))
    return out


BASE = recipes_dir() / "board-a-640.toml"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"registration.max_rotation_deg": 45.0}, "registration.max_rotation_deg"),
        ({"product_code": 0}, "product_code: Input should be greater than or equal to 1"),
        ({"geometry.profile.max.height_px": 320}, "min <= opt <= max, got 512 <= 640 <= 320"),
        ({"geometry.frame_width_px": 2000}, "must lie within profile min"),
        ({"geometry.profile.opt.channels": 3}, "must be 2 (board under test + template), got 3"),
        ({"classes.warp": {"score": 0.5}}, "unknown class(es) ['warp']"),
        ({"classes.open.review_score": 0.9}, "review_score must be < score, got 0.9 >= 0.5"),
        ({"classes.open.score": 1.5}, "classes.open.score"),
        ({"camera.pixel_format": "YUV422"}, "camera.pixel_format"),
        ({"name": None}, "name is required but missing"),
        ({"exposure": 10}, "exposure is not a recipe field"),
        ({"schema_version": 99}, "schema_version must be <= 1"),
        ({"schema_version": "one"}, "schema_version must be an integer, got 'one'"),
        ({"geometry.mode": "tiles"}, "mode 'tiles' needs tile_width_px and tile_height_px"),
        ({"masks": [{"x0": 0, "y0": 0, "x1": 900, "y1": 10}]}, "masks[0] must lie inside"),
    ],
)
def test_invalid_recipe_names_file_field_expected_and_found(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    path = _edit(BASE, tmp_path, change)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    text = str(info.value)
    assert str(path) in text
    assert expected in text


def test_malformed_toml_is_a_recipe_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('schema_version = 1\nname = "x\n')
    with pytest.raises(RecipeError, match=r"broken\.toml: not valid TOML"):
        load_recipe(path)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("template", "nowhere.png", "template must name an existing file"),
        ("model.path", "nowhere.onnx", "model.path must name an existing file"),
    ],
)
def test_missing_file_is_named(tmp_path: Path, field: str, value: str, expected: str) -> None:
    path = _edit(BASE, tmp_path, {})
    raw = tomllib.loads(path.read_text())
    if field == "template":
        raw["template"] = value
    else:
        raw["model"]["path"] = value
    path.write_text(tomli_w.dumps(raw))
    with pytest.raises(RecipeError, match=expected) as info:
        load_recipe(path)
    assert value in str(info.value)


def test_the_optional_scale_is_read_and_is_part_of_the_content(tmp_path: Path) -> None:
    base = load_recipe(BASE)
    assert base.recipe.geometry.mm_per_px is None  # optional: regions stay in pixels
    scaled = load_recipe(_edit(BASE, tmp_path, {"geometry.mm_per_px": 0.05}))
    assert scaled.recipe.geometry.mm_per_px == 0.05
    assert scaled.content_hash != base.content_hash
    with pytest.raises(RecipeError, match="mm_per_px"):
        load_recipe(_edit(BASE, tmp_path, {"geometry.mm_per_px": -1.0}))


def test_content_hash_tracks_content_not_location(tmp_path: Path) -> None:
    a = load_recipe(BASE).content_hash
    assert len(a) == 64
    assert load_recipe(_edit(BASE, tmp_path, {})).content_hash == a, "a copy is the same recipe"
    assert load_recipe(_edit(BASE, tmp_path, {"classes.open.score": 0.6})).content_hash != a
    # Same fields, a golden template with other bytes: a different recipe.
    path = _edit(BASE, tmp_path, {})
    raw = tomllib.loads(path.read_text())
    other = tmp_path / "other.png"
    other.write_bytes(Path(raw["template"]).read_bytes() + b"\0")
    raw["template"] = str(other)
    path.write_text(tomli_w.dumps(raw))
    assert load_recipe(path).content_hash != a


def test_cli_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recipe", "validate", *map(str, SHIPPED)]) == 0
    bad = _edit(BASE, tmp_path, {"product_code": 70000})
    assert main(["recipe", "validate", str(SHIPPED[0]), str(bad)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out
    assert "product_code" in out
    assert "70000" in out


def test_schema_export(tmp_path: Path) -> None:
    out = tmp_path / "recipe.schema.json"
    assert main(["recipe", "schema", "--out", str(out)]) == 0
    schema = json.loads(out.read_text())
    assert schema["title"] == "Recipe"
    assert {"geometry", "model", "classes", "schema_version"} <= set(schema["properties"])


def test_the_field_listing_opens_optional_tables(capsys: pytest.CaptureFixture[str]) -> None:
    """``aoi recipe schema`` lists an optional table's own fields (``split_merged``'s), not
    just the table, so an engineer sees what to write in it."""
    assert main(["recipe", "schema"]) == 0
    text = capsys.readouterr().out
    assert "model.split_merged.fill" in text and "model.split_merged.max_px" in text
    assert "geometry.profile.opt.batch" in text  # a plain nested table, as before


def test_current_schema_version() -> None:
    assert SCHEMA_VERSION == 1
    for p in SHIPPED:
        assert tomllib.loads(p.read_text())["schema_version"] == SCHEMA_VERSION


def test_unknown_recipe_name_lists_shipped() -> None:
    with pytest.raises(RecipeError, match="board-a-640"):
        find_recipe("no-such-board")


def test_fields_added_later_keep_the_hashes_of_recipes_written_before_them(tmp_path: Path) -> None:
    """Inspection rows name the recipe by its hash: a new optional field left unset must not
    give every existing recipe a new identity. The value is board-a-640's hash as the station
    computed it before ``mm_per_px``, ``one_defect_overlap`` and ``edge_margin_px`` existed (aoi
    bench, 2026-11-28); the shipped file now sets ``edge_margin_px``, so it is taken out here."""
    base = load_recipe(_edit(BASE, tmp_path, {"registration.edge_margin_px": None}))
    assert base.content_hash == "6d831d1c7f737bbad7fb6bf1bfe53be895646a5dfa383312a3c33cb16fef9a88"
    assert load_recipe(BASE).recipe.registration.edge_margin_px == 12
    assert load_recipe(BASE).content_hash != base.content_hash
    both = _edit(BASE, tmp_path, {"model.one_defect_overlap": 0.5})
    assert load_recipe(both).recipe.model.one_defect_overlap == 0.5
    assert load_recipe(both).content_hash != base.content_hash
    with pytest.raises(RecipeError, match="one_defect_overlap"):
        load_recipe(_edit(BASE, tmp_path, {"model.one_defect_overlap": 1.5}))


def test_the_merged_defect_split_is_read_checked_and_part_of_the_content(tmp_path: Path) -> None:
    base = load_recipe(BASE)
    assert base.recipe.model.split_merged is None  # board-a: one component, one defect
    on = {"model.split_merged": {"fill": 0.75, "max_px": 120}}
    split = load_recipe(_edit(BASE, tmp_path, on))
    assert split.recipe.model.split_merged.fill == 0.75
    assert split.recipe.model.split_merged.max_px == 120
    assert split.content_hash != base.content_hash
    bad = {"model.split_merged": {"fill": 1.5, "max_px": 120}}
    with pytest.raises(RecipeError, match=r"model\.split_merged\.fill") as info:
        load_recipe(_edit(BASE, tmp_path, bad))
    assert "1.5" in str(info.value)
    assert load_recipe(find_recipe("deeppcb-640")).recipe.model.split_merged is not None
