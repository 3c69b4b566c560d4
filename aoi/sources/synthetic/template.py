"""A synthetic product's golden template, drawn from its recipe's ``[synthetic]`` settings."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aoi.errors import SourceError
from aoi.recipe import LoadedRecipe
from aoi.sources.synthetic.boardgen import golden_board


def write_golden_template(loaded: LoadedRecipe, out: Path | None = None) -> tuple[Path, np.ndarray]:
    """Draw the product's defect-free board and write it (default: the recipe's template)."""
    r = loaded.recipe
    image = golden_board(
        r.geometry.frame_height_px, r.geometry.frame_width_px, r.synthetic.seed, r.synthetic.look
    )
    path = out or loaded.template_path
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        msg = f"{path}: could not write the golden template (folder writable? known suffix?)"
        raise SourceError(msg)
    return path, image
