"""Editing a recipe without a text editor: validate as you type, save as a new version, audit.

Qt-free. The editor works on the recipe's raw TOML dict; :func:`validate` runs the recipe schema
itself (the one ``aoi recipe validate`` and the station use), so the messages on screen are the
schema's, naming the field. :func:`save_new_version` bumps ``version``, keeps the previous file in
``<recipes>/history/`` (outside the folder the PLC's product-code lookup scans) and writes the new
one atomically; :func:`changes` lists every field that changed, for the audit trail.
"""

from __future__ import annotations

import copy
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from aoi.errors import RecipeError
from aoi.recipe import (
    LoadedRecipe,
    Recipe,
    format_validation_error,
    load_recipe,
    recipe_hash,
    site_recipes_dir,
)
from aoi.recipe.authoring import (
    copy_to_folder,
    is_shipped,
    read_document,
    update_document,
    write_document,
)

HISTORY_DIR = "history"


@dataclass(frozen=True)
class Validation:
    recipe: Recipe | None
    #: One line per problem, as the schema words it: ``file: field: message (found ...)``.
    messages: tuple[str, ...]
    #: Dotted paths of the fields in error (``classes.short.score``), to mark their widgets.
    fields: frozenset[str]

    @property
    def ok(self) -> bool:
        return self.recipe is not None


def read_raw(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        msg = f"{path}: cannot read the recipe ({err})"
        raise RecipeError(msg) from err


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def validate(raw: dict[str, Any], source: str) -> Validation:
    """The recipe the raw dict describes, or the schema's messages and the fields at fault."""
    try:
        return Validation(Recipe.model_validate(raw), (), frozenset())
    except ValidationError as err:
        lines = tuple(format_validation_error(source, err).splitlines())
        return Validation(None, lines, frozenset(_dotted(tuple(e["loc"])) for e in err.errors()))


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"classes.short.score": 0.5, "masks": [...]}``: one entry per leaf (lists stay whole)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """Every field whose value differs, as (field, old, new) text; None where absent."""
    a, b = flatten(old), flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if key == "version":
            continue
        if a.get(key) != b.get(key):
            out.append((key, _text(a, key), _text(b, key)))
    return out


def _text(d: dict[str, Any], key: str) -> str | None:
    if key not in d:
        return None
    v = d[key]
    return tomli_w.dumps({"v": v}).removeprefix("v = ").strip() if isinstance(v, list) else str(v)


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict (None removes the key: the schema's default applies)."""
    *parents, leaf = path.split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value


def get_path(raw: dict[str, Any], path: str, default: Any = None) -> Any:
    node: Any = raw
    for p in path.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def preview(raw: dict[str, Any], path: Path) -> LoadedRecipe:
    """The edited recipe as the station would load it from ``path`` (for a dry run)."""
    v = validate(raw, str(path))
    if v.recipe is None:
        raise RecipeError("\n".join(v.messages))
    loaded = LoadedRecipe(v.recipe, path.resolve(), "")
    loaded.content_hash = recipe_hash(v.recipe)
    return loaded


@dataclass(frozen=True)
class Saved:
    loaded: LoadedRecipe
    previous: Path
    changes: list[tuple[str, str | None, str | None]]
    #: Where it was written: the file edited, or the site's copy of a shipped recipe.
    path: Path


def save_new_version(path: Path, raw: dict[str, Any], base_version: int) -> Saved:
    """Write ``raw`` to ``path`` as version ``base_version + 1``; keep the old file in history.

    Refuses when the file on disk is no longer ``base_version`` (someone saved meanwhile), and
    when the result does not load (the old file is put back). A shipped recipe is copied into
    the site's recipes folder first and the copy is saved (:attr:`Saved.path`).
    """
    moved = is_shipped(path)
    if moved:
        shipped = read_raw(path)
        site = site_recipes_dir()
        mine = site / path.name
        path = mine if mine.is_file() else copy_to_folder(path, site)
    on_disk = read_raw(path)
    if on_disk.get("version", 1) != base_version:
        msg = (
            f"{path}: changed on disk meanwhile (now version {on_disk.get('version', 1)}, "
            f"you edited version {base_version}); reload it and edit again"
        )
        raise RecipeError(msg)
    new = copy.deepcopy(raw)
    new["version"] = base_version + 1
    if moved:
        # The site copy names the shipped model by absolute path: keep that, not the
        # shipped file's relative one the editor started from.
        for key, value in on_disk.get("model", {}).items():
            if get_path(new, f"model.{key}") == get_path(shipped, f"model.{key}"):
                set_path(new, f"model.{key}", value)
    v = validate(new, str(path))
    if not v.ok:
        raise RecipeError("\n".join(v.messages))
    history = path.parent / HISTORY_DIR
    history.mkdir(exist_ok=True)
    previous = history / f"{path.stem}.v{base_version}.toml"
    shutil.copy2(path, previous)
    doc = read_document(path)
    update_document(doc, new)
    write_document(path, doc)
    try:
        # Files are checked by the dry run and on activation; a missing model is no reason to
        # lose the threshold edits.
        loaded = load_recipe(path, check_files=False)
    except RecipeError:
        shutil.copy2(previous, path)
        raise
    return Saved(loaded, previous, changes(on_disk, new), path)


def restore(saved: Saved, path: Path) -> None:
    """Put the previous version back (the audit trail could not record the change)."""
    shutil.copy2(saved.previous, path)
