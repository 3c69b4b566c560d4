"""Recipes as the line sees them: the active recipe the PLC is told, and lookup by product code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aoi.errors import RecipeError
from aoi.recipe import LoadedRecipe, load_recipe, read_recipe_toml
from aoi.recipe.authoring import claimed_codes
from plc.errors import UnknownProductCode
from plc.events import ActiveRecipe


def active_recipe(loaded: LoadedRecipe) -> ActiveRecipe:
    """What the PLC is told about the recipe on the line."""
    return ActiveRecipe.from_hash(loaded.recipe.product_code, loaded.content_hash, loaded.name)


def recipe_for_product_code(product_code: int, folder: Path) -> Path:
    """The one recipe in ``folder`` whose ``product_code`` is ``product_code``.

    A file that does not load is skipped; if none loads with the code but one that fails claims
    it, that file's :class:`RecipeError` (file, field, expected, found) is what the PLC hears.
    """
    matches: list[Path] = []
    codes: dict[int, str] = {}
    unreadable: list[str] = []
    claimed_by_broken: list[RecipeError] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            recipe = load_recipe(path, check_files=False).recipe
        except RecipeError as err:
            unreadable.append(path.name)
            if _claimed_code(path) == product_code:
                claimed_by_broken.append(err)
            continue
        codes[recipe.product_code] = path.name
        if recipe.product_code == product_code:
            matches.append(path)
    if len(matches) > 1:
        names = [m.name for m in matches]
        msg = f"product code {product_code} is claimed by {names} in {folder}; one recipe per code"
        raise RecipeError(msg)
    if not matches and claimed_by_broken:
        raise claimed_by_broken[0]
    if not matches:
        msg = (
            f"no recipe in {folder} has product_code = {product_code}; "
            f"found {dict(sorted(codes.items())) or 'none'}"
            + (f"; unreadable: {unreadable}" if unreadable else "")
        )
        raise UnknownProductCode(msg)
    return matches[0]


def _claimed_code(path: Path) -> object:
    """The ``product_code`` a recipe file that fails validation says it is for, if it parses."""
    try:
        return read_recipe_toml(path).get("product_code")
    except RecipeError:
        return None


@dataclass(frozen=True)
class DuplicateCode:
    """Two or more recipe files claiming one product code (the PLC could not choose)."""

    product_code: int
    files: tuple[Path, ...]

    def message(self) -> str:
        names = " and ".join(str(f) for f in self.files)
        return f"product code {self.product_code} is claimed by {names}; one recipe per code"


def duplicate_product_codes(paths: Iterable[Path]) -> list[DuplicateCode]:
    """Every product code that more than one of ``paths`` claims (also files that fail to
    validate: the PLC's lookup would still stumble on them). ``aoi recipe validate``, the
    engineer screen's list and ``aoi doctor`` use this one check."""
    by_code: dict[int, list[Path]] = {}
    for path, code in claimed_codes(paths).items():
        by_code.setdefault(code, []).append(path)
    return [
        DuplicateCode(code, tuple(files))
        for code, files in sorted(by_code.items())
        if len(files) > 1
    ]
