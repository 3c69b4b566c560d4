"""The engineer screen's recipe list, Qt-free: each recipe with its state on the line.

A recipe that does not validate, or shares its product code with another (the PLC could not
choose), is marked and cannot be activated; "on the line" is the version actually running, not
a newer one saved since.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aoi.app.recipes import duplicate_product_codes
from aoi.errors import RecipeError
from aoi.recipe import LoadedRecipe, load_recipe, read_recipe_toml


@dataclass(frozen=True)
class RecipeEntry:
    """One line of the recipe list."""

    path: Path
    name: str
    version: int | str
    product_code: int | str
    #: This file, at this version, is what the station inspects with now.
    on_line: bool
    #: Why it cannot be activated, in words ("" when it can).
    problem: str = ""
    #: The older version of this file that runs while this one is only saved.
    older_on_line: int | None = None

    def text(self) -> str:
        state = "  · ON THE LINE" if self.on_line else ""
        if self.older_on_line is not None:
            state = f"  · v{self.older_on_line} ON THE LINE, v{self.version} not active yet"
        if self.problem:
            state += f"\n   ✖ {self.problem}"
        return f"{self.name}\n   v{self.version} · product code {self.product_code}{state}"


def _files(folders: Iterable[Path]) -> list[Path]:
    seen: dict[Path, Path] = {}
    for folder in folders:
        try:
            for p in sorted(folder.glob("*.toml")):
                seen.setdefault(p.resolve(), p)
        except OSError:
            continue
    return list(seen.values())


def list_recipes(folders: Iterable[Path], active: LoadedRecipe | None) -> list[RecipeEntry]:
    """Every recipe in ``folders`` (first one wins on a repeated file), marked."""
    files = _files(folders)
    clash = {f.resolve(): dup for dup in duplicate_product_codes(files) for f in dup.files}
    out: list[RecipeEntry] = []
    for path in files:
        problem = ""
        try:
            raw = read_recipe_toml(path)
        except RecipeError:
            raw = {}
        try:
            recipe = load_recipe(path, check_files=False).recipe
        except RecipeError as err:
            recipe = None
            problem = "invalid: " + str(err).splitlines()[0].split(": ", 1)[-1]
        dup = clash.get(path.resolve())
        if dup is not None:
            others = ", ".join(f.stem for f in dup.files if f.resolve() != path.resolve())
            problem = problem or f"product code {dup.product_code} also used by {others}"
        version = recipe.version if recipe else raw.get("version", "?")
        same_file = active is not None and active.path == path.resolve()
        live = same_file and active is not None and active.recipe.version == version
        older = active.recipe.version if same_file and not live and active else None
        out.append(
            RecipeEntry(
                path,
                str(raw.get("name", path.stem)),
                version,
                raw.get("product_code", "?"),
                live,
                problem,
                older,
            )
        )
    return out
