"""``aoi recipe``: validate recipes, export the JSON schema, draw a synthetic golden template."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aoi.app.recipe_check import StartCheck
from aoi.errors import AoiError
from aoi.recipe import find_recipe, json_schema, load_recipe


def cmd_recipe_validate(args: argparse.Namespace) -> int:
    """Check every file named and report each, valid or not; exit 1 if any is invalid.

    Unless ``--schema-only``, a recipe must also start: its template has the frame size and its
    model runs on the recipe's input (:mod:`aoi.app.recipe_check`).
    """
    failed = 0
    starts = None if args.schema_only else StartCheck()
    for p in args.paths:
        try:
            loaded = load_recipe(p)
            if starts is not None:
                starts(loaded)
        except AoiError as err:
            failed += 1
            print(f"INVALID {err}")
        else:
            r = loaded.recipe
            print(
                f"ok      {p}: {loaded.name} v{r.version} "
                f"(product code {r.product_code}, hash {loaded.content_hash[:12]})"
            )
    return 1 if failed else 0


def cmd_recipe_schema(args: argparse.Namespace) -> int:
    text = json.dumps(json_schema(), indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def cmd_recipe_template(args: argparse.Namespace) -> int:
    """Write a synthetic product's golden template from its ``[synthetic]`` settings."""
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
    q = rsub.add_parser("schema", help="print the recipe JSON schema (for editors)")
    q.add_argument("--out", default=None, help="write to this file instead of stdout")
    q.set_defaults(func=cmd_recipe_schema)
    q = rsub.add_parser("template", help="write a synthetic product's golden template")
    q.add_argument("recipe")
    q.add_argument("--out", default=None, help="file to write (default: the recipe's template)")
    q.set_defaults(func=cmd_recipe_template)
