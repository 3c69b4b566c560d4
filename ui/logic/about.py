"""What the GUI's About box says: the station's version, the running recipe's model, and what that
model was trained on with the data's terms (from :mod:`aoi.model_terms`, as ``aoi doctor``)."""

from __future__ import annotations

import logging
from pathlib import Path

import aoi
from aoi.errors import AoiError
from aoi.model_terms import model_terms

log = logging.getLogger(__name__)


def about_text(recipe_name: str | None, model_path: Path | None) -> str:
    """The About box's text for the recipe on the line (None: no recipe loaded)."""
    lines = [f"AOI station {aoi.__version__}: automated optical inspection of bare PCBs.", ""]
    if recipe_name is None or model_path is None:
        lines.append("No recipe is loaded, so no defect model is in use.")
    else:
        lines.append(f"Recipe {recipe_name} runs the defect model {model_path.name}.")
        try:
            terms = model_terms(model_path)
        except AoiError as err:
            lines.append(f"Its training data cannot be read: {err}")
        else:
            if not terms.known:
                lines.append(terms.line())
            else:
                lines.append(f"Trained on {terms.data}.")
                if terms.research_only:
                    lines.append(f"Research use only: {terms.terms}.")
                else:
                    lines.append(f"Terms: {terms.terms}.")
    lines += ["", "Software licence: MIT. Each model's card (models/*.md) has its details."]
    return "\n".join(lines)
