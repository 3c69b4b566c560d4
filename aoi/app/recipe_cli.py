"""``aoi recipe``: validate, copy as a new product, describe the schema, make golden templates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aoi.app.recipe_check import StartCheck
from aoi.app.recipes import duplicate_product_codes
from aoi.errors import AoiError
from aoi.recipe import find_recipe, json_schema, load_recipe
from aoi.recipe.authoring import new_recipe_from
from aoi.recipe.describe import field_rows


def cmd_recipe_validate(args: argparse.Namespace) -> int:
    """Check every file named and report each, valid or not; exit 1 if any is invalid.

    Unless ``--schema-only``, a recipe must also start: its template has the frame size and its
    model runs on the recipe's input (:mod:`aoi.app.recipe_check`).
    """
    failed = 0
    starts = None if args.schema_only else StartCheck()
    paths = _expand(args.paths)
    broken: set[Path] = set()
    for p in paths:
        try:
            loaded = load_recipe(p)
            if starts is not None:
                starts(loaded)
        except AoiError as err:
            failed += 1
            broken.add(Path(p).resolve())
            print(f"INVALID {err}")
        else:
            r = loaded.recipe
            print(
                f"ok      {p}: {loaded.name} v{r.version} "
                f"(product code {r.product_code}, hash {loaded.content_hash[:12]})"
            )
    # The PLC chooses a recipe by its code: two files with one code in a folder is an error,
    # also when only one of them was named. A file already reported invalid is not repeated.
    named = {Path(p).resolve() for p in paths} - broken
    neighbours = {q.resolve() for p in paths for q in Path(p).parent.glob("*.toml")}
    for dup in duplicate_product_codes(sorted((named | neighbours) - broken)):
        if named & set(dup.files):
            failed += 1
            print(f"INVALID {dup.message()}")
    return 1 if failed else 0


def _expand(paths: list[str]) -> list[str]:
    """Files as named; a folder stands for every recipe file in it."""
    out: list[str] = []
    for p in paths:
        folder = Path(p)
        out += [str(q) for q in sorted(folder.glob("*.toml"))] if folder.is_dir() else [p]
    return out


def cmd_recipe_schema(args: argparse.Namespace) -> int:
    """Every recipe field with its type, default and meaning; ``--json``: the JSON schema."""
    if args.json or args.out:
        text = json.dumps(json_schema(), indent=2)
    else:
        rows = field_rows()
        width = max(len(r.field) for r in rows)
        text = "\n".join(
            f"{r.field:<{width}}  {r.type}"
            + (f" = {r.default}" if r.default else "")
            + f"\n{'':<{width}}  {r.description}"
            for r in rows
        )
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def cmd_recipe_new(args: argparse.Namespace) -> int:
    """Copy a recipe as a new product into the site's recipes folder (comments kept)."""
    folder = Path(args.folder) if args.folder else None
    path = new_recipe_from(find_recipe(args.source), args.name, folder, args.product_code)
    loaded = load_recipe(path, check_files=False)
    print(
        f"wrote {path}: {loaded.name} v{loaded.recipe.version}, product code "
        f"{loaded.recipe.product_code}, template {loaded.template_path} (a copy of "
        f"{args.source}'s: replace it with your board's, aoi recipe template {args.name} "
        "--grab genicam)"
    )
    return 0


def cmd_recipe_template(args: argparse.Namespace) -> int:
    """Write a recipe's golden template: a real board's image, a grab, or the synthetic look."""
    if args.from_image or args.grab:
        from aoi.app.template_cli import template_from_board

        return template_from_board(args)
    from aoi.sources.synthetic.template import write_golden_template

    loaded = load_recipe(find_recipe(args.recipe), check_files=False)
    path, image = write_golden_template(loaded, Path(args.out) if args.out else None)
    print(f"wrote {path} ({image.shape[1]}x{image.shape[0]}, look {loaded.recipe.synthetic.look})")
    return 0


def add_recipe_parser(sub: Any) -> None:
    p = sub.add_parser("recipe", help="validate recipes, export the schema, make templates")
    rsub = p.add_subparsers(dest="recipe_command", required=True)
    q = rsub.add_parser("validate", help="validate recipe files; exit 1 if any is invalid")
    q.add_argument("paths", nargs="+")
    q.add_argument(
        "--schema-only",
        action="store_true",
        help="check fields and files only; skip opening the template and running the model",
    )
    q.set_defaults(func=cmd_recipe_validate)
    q = rsub.add_parser("schema", help="list every recipe field: type, default, meaning")
    q.add_argument("--json", action="store_true", help="print the JSON schema (for editors)")
    q.add_argument("--out", default=None, help="write the JSON schema to this file")
    q.set_defaults(func=cmd_recipe_schema)
    q = rsub.add_parser("new", help="copy a recipe as a new product (site recipes folder)")
    q.add_argument("name", help="the new product's recipe name")
    q.add_argument("--from", dest="source", required=True, help="recipe to copy (name or file)")
    q.add_argument("--product-code", type=int, default=None, help="default: the next free code")
    q.add_argument("--folder", default=None, help="default: $AOI_RECIPES_DIR or /etc/aoi/recipes")
    q.set_defaults(func=cmd_recipe_new)
    q = rsub.add_parser(
        "template", help="write a golden template: from a board's image, a grab, or synthetic"
    )
    q.add_argument("recipe")
    q.add_argument("--out", default=None, help="file to write (synthetic only)")
    src = q.add_mutually_exclusive_group()
    src.add_argument("--from-image", default=None, help="a good board's PNG, as the camera sees it")
    src.add_argument("--grab", default=None, help="grab it: synthetic | replay:DIR | genicam[:ID]")
    q.add_argument(
        "--check", default=None, help="a second board's image to check alignment against"
    )
    q.set_defaults(func=cmd_recipe_template)
