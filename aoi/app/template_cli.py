"""``aoi recipe template NAME --from-image PNG | --grab SOURCE``: a real board as the template."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from aoi.app.golden import check_alignment, grab_boards, png_bytes
from aoi.config import load_station_config
from aoi.errors import RecipeError
from aoi.pixels import to_mono8
from aoi.recipe import find_recipe, load_recipe
from aoi.recipe.authoring import is_shipped, set_template
from aoi.sources.replay import read_image


def _read(path: str) -> np.ndarray:
    # The replay source's reader: a file cut short is refused, not decoded with grey rows.
    return to_mono8(read_image(Path(path)))


def template_from_board(args: argparse.Namespace) -> int:
    """Save the board's image as the template; check a second board aligns to it."""
    path = find_recipe(args.recipe)
    if is_shipped(path):
        msg = (
            f"{path} is a shipped recipe (read-only): copy it first, "
            f"aoi recipe new NAME --from {args.recipe}"
        )
        raise RecipeError(msg)
    loaded = load_recipe(path, check_files=False)
    second: np.ndarray | None = None
    if args.grab:
        config = load_station_config(getattr(args, "config", None))
        board, second = grab_boards(args.grab, loaded, config, count=2)
    else:
        board = _read(args.from_image)
    g = loaded.recipe.geometry
    if board.shape != (g.frame_height_px, g.frame_width_px):
        msg = (
            f"the board's image is {board.shape[1]}x{board.shape[0]} px, the recipe's frame "
            f"{g.frame_width_px}x{g.frame_height_px} px (geometry.frame_*_px): grab with the "
            "recipe's camera settings, or change the geometry first"
        )
        raise RecipeError(msg)
    written = set_template(path, png_bytes(board))
    print(f"wrote {written} ({board.shape[1]}x{board.shape[0]}); {path} points at it")
    if args.check:
        second = _read(args.check)
    if second is None:
        print("no second board to check alignment against (--check PNG)")
        return 0
    check = check_alignment(board, second, loaded.recipe.registration)
    print(check.text)
    return 0 if check.ok else 1


__all__ = ["template_from_board"]
