"""Recipe files: find, read, migrate, validate and hash them.

Loading validates every field and raises :class:`RecipeError` whose message names the file, the
field, what was expected and what was found. Paths inside a recipe are relative to the recipe
file. ``schema_version`` is migrated forward on load; a recipe's content hash (with the golden
template's bytes) identifies exactly what inspected a board.
"""

from __future__ import annotations

import hashlib
import json
import os
import reprlib
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from aoi.errors import RecipeError
from aoi.recipe.nesting import check_nesting
from aoi.recipe.schema import SCHEMA_VERSION, Recipe

_T = TypeVar("_T")

# --- migrations ------------------------------------------------------------------------------

#: ``MIGRATIONS[n]`` turns a raw recipe dict of schema version ``n`` into version ``n + 1``.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def migrate(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Bring a raw recipe dict forward to :data:`SCHEMA_VERSION`."""
    version = raw.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        msg = f"{source}: schema_version must be an integer, got {version!r}"
        raise RecipeError(msg)
    if version > SCHEMA_VERSION:
        msg = (
            f"{source}: schema_version must be <= {SCHEMA_VERSION} (this station's newest), "
            f"got {version}; upgrade the station software"
        )
        raise RecipeError(msg)
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            msg = f"{source}: schema_version {version} has no migration to {version + 1}"
            raise RecipeError(msg)
        raw = step(dict(raw))
        version += 1
        raw["schema_version"] = version
    return raw


# --- loading ---------------------------------------------------------------------------------


#: Shows a found value in an error message: long strings and deep lists are cut short.
_FOUND = reprlib.Repr()
_FOUND.maxstring = 80
_FOUND.maxother = 80
_FOUND.maxlevel = 3


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line per problem: ``file: field must ... (got ...)``."""
    lines = []
    for e in err.errors():
        field = _loc(tuple(e["loc"])) or "(recipe)"
        found = e.get("input")
        text = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            lines.append(f"{source}: {field} is required but missing")
        elif e["type"] == "extra_forbidden":
            lines.append(f"{source}: {field} is not a recipe field (found {found!r})")
        else:
            shown = "{...}" if isinstance(found, dict) else _FOUND.repr(found)
            lines.append(f"{source}: {field}: {text} (found {shown})")
    return "\n".join(lines)


class LoadedRecipe:
    """A validated recipe, the file it came from, and its content hash."""

    def __init__(self, recipe: Recipe, path: Path, content_hash: str) -> None:
        self.recipe = recipe
        self.path = path
        self.content_hash = content_hash

    @property
    def name(self) -> str:
        return self.recipe.name

    def resolve(self, p: Path) -> Path:
        """A path from the recipe, made absolute against the recipe file's folder."""
        return p if p.is_absolute() else _absolute(self.path.parent / p)

    @property
    def template_path(self) -> Path:
        return self.resolve(self.recipe.template)

    @property
    def model_path(self) -> Path:
        return self.resolve(self.recipe.model.path)

    @property
    def ensemble_paths(self) -> tuple[Path, ...]:
        """``[model] ensemble``'s further models, resolved as ``model_path`` is."""
        return tuple(self.resolve(p) for p in self.recipe.model.ensemble)


def _absolute(p: Path) -> Path:
    """``p`` resolved; where the OS cannot resolve it (a symlink loop, an I/O error, a path the
    OS refuses), only made absolute: opening it then fails with an error that names it."""
    try:
        return p.resolve()
    except (OSError, RuntimeError, ValueError):
        return Path(os.path.abspath(p))


def parse_recipe(raw: dict[str, Any], source: str) -> Recipe:
    raw = migrate(raw, source)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as err:
        raise RecipeError(format_validation_error(source, err)) from err


def read_recipe_toml(path: Path) -> dict[str, Any]:
    """A recipe file's TOML as a dict, not yet validated; :class:`RecipeError` naming the file
    if it cannot be read or parsed."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        msg = f"{source}: recipe file not found"
        raise RecipeError(msg) from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        # ValueError: a NUL byte in the path, which no OS call accepts.
        msg = f"{source}: cannot read recipe file ({err})"
        raise RecipeError(msg) from err
    check_nesting(text, source)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        msg = f"{source}: not valid TOML: {err}"
        raise RecipeError(msg) from err
    except RecursionError as err:
        # check_nesting keeps files within the reader's depth; this is for a caller deep in
        # its own stack already.
        msg = f"{source}: not readable TOML: arrays or inline tables nest too deep to read"
        raise RecipeError(msg) from err


def load_recipe(path: str | Path, *, check_files: bool = True) -> LoadedRecipe:
    """Read, migrate and validate a recipe file.

    With ``check_files`` the template and the model must exist (the template's bytes go into the
    content hash).
    """
    path = Path(path)
    source = str(path)
    raw = read_recipe_toml(path)
    recipe = parse_recipe(raw, source)
    loaded = LoadedRecipe(recipe, _absolute(path), "")
    template_bytes = b""
    model_digest = ""
    if check_files:
        template_bytes = _read_field(loaded.template_path, "template", source, Path.read_bytes)
        model_digest = _read_field(loaded.model_path, "model.path", source, file_hash)
        for i, extra in enumerate(loaded.ensemble_paths):  # an ensemble's models: all in
            model_digest += _read_field(extra, f"model.ensemble[{i}]", source, file_hash)
    loaded.content_hash = recipe_hash(recipe, template_bytes, model_digest)
    return loaded


def _read_field(p: Path, field: str, source: str, read: Callable[[Path], _T]) -> _T:
    """``read(p)`` for the file a recipe field names; any OS error is a :class:`RecipeError`
    naming the field (EIO, EACCES, ENAMETOOLONG on the whole path, a folder or device)."""
    try:
        if not p.is_file():
            msg = f"{source}: {field} must name an existing file, found no file at {p}"
            raise RecipeError(msg)
        return read(p)
    except OSError as err:
        msg = f"{source}: {field} must name a readable file, reading {p} failed: {err}"
        raise RecipeError(msg) from err


def recipe_hash(recipe: Recipe, template_bytes: bytes = b"", model_digest: str = "") -> str:
    """SHA-256 identifying what a recipe inspects with: its settings and its files' contents.

    File locations are left out (a recipe copied to another folder is the same recipe); the
    golden template's bytes and the model's digest are in.
    """
    content = recipe.model_dump(mode="json")
    content.pop("template")
    content["model"].pop("path")
    content["model"].pop("ensemble", None)  # the models count by their digests, not locations
    # Fields added later: unset (at their default), they keep the hashes of the recipes
    # written before them.
    later = (
        ("geometry", "mm_per_px", None),
        ("model", "one_defect_overlap", None),
        ("model", "split_merged", None),
        ("model", "alternates", False),
        ("model", "scales", [1.0]),
        ("registration", "edge_margin_px", None),
    )
    for table, key, default in later:
        if content[table].get(key, default) == default:
            content[table].pop(key, None)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    h = hashlib.sha256(canonical.encode())
    h.update(hashlib.sha256(template_bytes).digest())
    h.update(model_digest.encode())
    return h.hexdigest()


def file_hash(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: Where a station's own recipes live, outside the install (an upgrade never touches them).
SITE_RECIPES_DIR = Path("/etc/aoi/recipes")


def shipped_root() -> Path:
    """The folder holding the shipped ``recipes/`` and ``models/`` side by side.

    In a wheel they are package data under ``aoi/_shipped/`` (setup.py puts them there); in a
    checkout or an editable install they are the checkout's top-level folders. Either way a
    recipe's ``../models/...`` resolves against its own file.
    """
    package = Path(__file__).resolve().parents[1]
    installed = package / "_shipped"
    return installed if installed.is_dir() else package.parent


def recipes_dir() -> Path:
    """The shipped recipes folder (see :func:`shipped_root`)."""
    return shipped_root() / "recipes"


def site_recipes_dir() -> Path:
    """The station's own recipes folder: ``$AOI_RECIPES_DIR``, else ``/etc/aoi/recipes``."""
    env = os.environ.get("AOI_RECIPES_DIR")
    return Path(env) if env else SITE_RECIPES_DIR


def recipe_folders() -> list[Path]:
    """Where a recipe name is looked up, first match wins: the site's folder, then the shipped."""
    return [site_recipes_dir(), recipes_dir()]


DEFAULT_RECIPE = "board-a-640"


def find_recipe(name_or_path: str) -> Path:
    """A recipe by file path, or by name from the site's recipes, then the shipped ones."""
    p = Path(name_or_path)
    try:
        exists = p.exists()
    except OSError:  # a name the OS refuses (too long): not a file, maybe a shipped name
        exists = False
    if p.suffix == ".toml" or exists:
        return p
    known: set[str] = set()
    for folder in recipe_folders():
        candidate = folder / f"{name_or_path}.toml"
        try:
            if candidate.is_file():
                return candidate
            known.update(q.stem for q in folder.glob("*.toml"))
        except OSError:  # an unreadable site folder does not hide the shipped recipes
            continue
    where = ", ".join(str(f) for f in recipe_folders())
    msg = f"recipe {name_or_path!r} not found: not a file, and not one of {sorted(known)} ({where})"
    raise RecipeError(msg)
