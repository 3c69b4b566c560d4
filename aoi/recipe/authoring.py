"""Writing recipes: a new product from a copy, a new golden template, edits that keep comments.

Recipes are edited as TOML documents (tomlkit), not as dicts: comments, inline tables and the
order of fields survive every save, so a diff shows only what changed. Everything written goes
to the station's own recipes folder (:func:`aoi.recipe.site_recipes_dir`); the shipped recipes
are package data and never change.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aoi.errors import RecipeError
from aoi.recipe.loading import read_recipe_toml, recipes_dir, shipped_root, site_recipes_dir

if TYPE_CHECKING:
    import tomlkit

log = logging.getLogger(__name__)

#: Golden templates live in this folder beside the recipes (as in the shipped ``recipes/``).
TEMPLATES_DIR = "templates"


def read_document(path: Path) -> tomlkit.TOMLDocument:
    """A recipe file as an editable TOML document (comments and layout kept)."""
    # Imported here: the station reads recipes (and product codes) without tomlkit.
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TOMLKitError) as err:
        msg = f"{path}: cannot read the recipe ({err})"
        raise RecipeError(msg) from err


def write_document(path: Path, doc: tomlkit.TOMLDocument) -> None:
    """Write atomically: the PLC's product-code lookup never sees half a file."""
    import tomlkit

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


def update_document(node: Any, new: dict[str, Any]) -> None:
    """Make the table ``node`` hold ``new``, touching only what differs.

    Tables and inline tables are updated key by key (an inline table stays inline); any other
    value that changed is replaced; keys gone from ``new`` are removed.
    """
    for key in [k for k in node if k not in new]:
        del node[key]
    for key, value in new.items():
        old = node.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            update_document(old, value)
        elif key not in node or _plain(old) != value:
            node[key] = value


def _plain(value: Any) -> Any:
    unwrap = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def is_shipped(path: Path) -> bool:
    """Whether ``path`` is one of the shipped recipes (package data, read-only)."""
    try:
        root = shipped_root().resolve()
        return path.resolve().is_relative_to(root / "recipes") or path.resolve().is_relative_to(
            root / "aoi"
        )
    except OSError:
        return False


def claimed_codes(paths: Iterable[Path]) -> dict[Path, int]:
    """The ``product_code`` each file claims, read without validating (broken files count)."""
    out: dict[Path, int] = {}
    for p in paths:
        try:
            code = read_recipe_toml(p).get("product_code")
        except RecipeError:
            continue
        if isinstance(code, int) and not isinstance(code, bool):
            out[p] = code
    return out


def _recipe_files(folders: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        try:
            files += sorted(folder.glob("*.toml"))
        except OSError:
            continue
    return files


def free_product_code(folders: Iterable[Path]) -> int:
    """The lowest product code above every code claimed in ``folders``."""
    codes = claimed_codes(_recipe_files(folders)).values()
    return max(codes, default=100) + 1


def _absolute_against(value: str, source_dir: Path) -> str:
    p = Path(value)
    return str(p if p.is_absolute() else (source_dir / p).resolve())


def new_recipe_from(
    source: Path,
    name: str,
    folder: Path | None = None,
    product_code: int | None = None,
) -> Path:
    """Copy ``source`` as product ``name`` into ``folder`` (default: the site's recipes folder).

    The copy keeps the source's comments, starts at version 1, gets ``product_code`` or a code no
    recipe in the folder or the shipped ones claims, and a copy of the source's template (replace
    it with the real board's). The model and calibration paths are made absolute: the copy no
    longer lies beside the shipped models.
    """
    folder = folder or site_recipes_dir()
    target = folder / f"{name}.toml"
    if target.exists():
        msg = f"{target}: a recipe named {name!r} exists already; choose another name"
        raise RecipeError(msg)
    doc = read_document(source)
    raw = read_recipe_toml(source)
    taken = claimed_codes(_recipe_files({folder, recipes_dir()}))
    if product_code is None:
        product_code = max(taken.values(), default=100) + 1
    elif product_code in taken.values():
        owner = next(p for p, c in taken.items() if c == product_code)
        msg = f"product code {product_code} is taken by {owner}; one recipe per code"
        raise RecipeError(msg)
    doc["name"] = name
    doc["product_code"] = product_code
    doc["version"] = 1
    if "description" in doc:
        doc["description"] = f"{name}, copied from {raw.get('name', source.stem)}"
    template = (folder / TEMPLATES_DIR / f"{name}.png").resolve()
    src_template = (source.parent / str(raw.get("template", ""))).resolve()
    template.parent.mkdir(parents=True, exist_ok=True)
    if src_template.is_file():
        shutil.copyfile(src_template, template)
    doc["template"] = f"{TEMPLATES_DIR}/{name}.png"
    _model_paths_absolute(doc, source.parent)
    write_document(target, doc)
    log.info("new recipe %s from %s (product code %d)", target, source, product_code)
    return target


def set_template(recipe: Path, png: bytes) -> Path:
    """Write ``png`` as ``recipe``'s golden template beside it and point the recipe at it."""
    doc = read_document(recipe)
    name = str(doc.get("name", recipe.stem))
    template = recipe.parent / TEMPLATES_DIR / f"{name}.png"
    template.parent.mkdir(parents=True, exist_ok=True)
    tmp = template.with_suffix(".png.tmp")
    tmp.write_bytes(png)
    os.replace(tmp, template)
    relative = f"{TEMPLATES_DIR}/{name}.png"
    if doc.get("template") != relative:
        doc["template"] = relative
        write_document(recipe, doc)
    return template


def copy_to_folder(source: Path, folder: Path) -> Path:
    """``source`` copied unchanged (name, code, version) into ``folder``, with its template, and
    its model paths made absolute: how a shipped recipe becomes the site's to edit."""
    target = folder / source.name
    doc = read_document(source)
    raw = read_recipe_toml(source)
    template = str(raw.get("template", ""))
    src_template = (source.parent / template).resolve()
    if template and not Path(template).is_absolute() and src_template.is_file():
        (target.parent / template).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_template, target.parent / template)
    _model_paths_absolute(doc, source.parent)
    write_document(target, doc)
    return target


def _model_paths_absolute(doc: Any, base: Path) -> None:
    """The ``[model]`` paths of a copied recipe, made absolute against its old folder: the copy
    still finds the shipped model (and calibration images) from wherever it is saved."""
    model = doc.get("model")
    if model is not None:
        for key in ("path", "calibration_dir"):
            if key in model:
                model[key] = _absolute_against(str(model[key]), base)
        if "ensemble" in model:
            model["ensemble"] = [_absolute_against(str(p), base) for p in model["ensemble"]]
