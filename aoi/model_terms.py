"""What a model was trained on and that data's terms, from the table beside the model files.

The table is ``training_data.toml`` in the model's own folder (``models/`` in a checkout,
``aoi/_shipped/models/`` in a wheel), one entry per model file name: ``data`` (what it was
trained on), ``terms`` (that data's terms of use) and ``research_only``. ``aoi doctor`` and the
GUI's About box show it, so the DeepPCB research-use limit is seen where the station is run,
not only in the model cards. A model without an entry (a line's own) is said to have none.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from aoi.errors import ModelError

log = logging.getLogger(__name__)

#: The table's file name, in the folder of the models it describes.
TERMS_FILE = "training_data.toml"


@dataclass(frozen=True)
class ModelTerms:
    """One model file's training data and that data's terms (``None`` fields: no entry)."""

    model: str
    data: str | None = None
    terms: str | None = None
    research_only: bool = False

    @property
    def known(self) -> bool:
        return self.data is not None

    def line(self, used_by: str = "") -> str:
        """One line for a report: the model (and ``used_by``, the recipes), its training data
        and the terms."""
        model = f"{self.model} ({used_by})" if used_by else self.model
        if not self.known:
            return (
                f"{model}: training data not stated ({TERMS_FILE} beside it has no entry); "
                "check the model's card before production use"
            )
        limit = "RESEARCH USE ONLY: " if self.research_only else ""
        return f"{model}: trained on {self.data}; {limit}{self.terms}"


def read_table(path: Path) -> dict[str, ModelTerms]:
    """The entries of one ``training_data.toml`` (none when the file does not exist)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        msg = f"{path}: cannot read the models' training-data table ({err})"
        raise ModelError(msg) from err
    out = {}
    for name, entry in raw.items():
        fields = entry if isinstance(entry, dict) else {}
        data, terms = fields.get("data"), fields.get("terms")
        research_only = fields.get("research_only", False)
        if not (
            isinstance(data, str) and isinstance(terms, str) and isinstance(research_only, bool)
        ):
            msg = (
                f'{path}: [{name!r}] needs data = "...", terms = "..." and '
                f"research_only = true/false, found {entry!r}"
            )
            raise ModelError(msg)
        out[name] = ModelTerms(name, data, terms, research_only)
    return out


def model_terms(model_path: Path) -> ModelTerms:
    """The entry for ``model_path`` in the table beside it (an unknown one where it has none)."""
    table = read_table(model_path.parent / TERMS_FILE)
    return table.get(model_path.name, ModelTerms(model_path.name))
