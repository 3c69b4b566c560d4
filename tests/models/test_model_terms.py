"""Every shipped model states its training data and that data's terms: in the table the station
reads (models/training_data.toml), in its card, and in the wheel's list of shipped files."""

from __future__ import annotations

from pathlib import Path

import pytest

from aoi.errors import ModelError
from aoi.model_terms import TERMS_FILE, model_terms, read_table

REPO = Path(__file__).resolve().parents[2]
MODELS = sorted((REPO / "models").glob("aoi-defect-v*.onnx"))


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.name)
def test_every_shipped_model_has_its_training_data_and_terms(model: Path) -> None:
    terms = model_terms(model)
    assert terms.known, f"{model.name} has no entry in models/{TERMS_FILE}"
    card = (model.with_suffix(".md")).read_text(encoding="utf-8")
    assert "## Training data and terms" in card
    if terms.research_only:
        # The card says what the table says: DeepPCB, its README's research-use limit, its MIT file.
        assert "DeepPCB" in terms.data and "Research use only" in card
        assert "research purpose" in card and "LICENSE file is MIT" in card
    else:
        assert "synthetic" in terms.data and "MIT licence" in card


def test_the_table_ships_in_the_wheel_and_the_sdist() -> None:
    setup = (REPO / "setup.py").read_text(encoding="utf-8")
    manifest = (REPO / "MANIFEST.in").read_text(encoding="utf-8")
    assert f'"{TERMS_FILE}"' in setup and f"models/{TERMS_FILE}" in manifest


def test_a_malformed_entry_names_the_file_and_the_fields(tmp_path: Path) -> None:
    table = tmp_path / TERMS_FILE
    table.write_text('["m.onnx"]\ndata = "boards"\n')
    with pytest.raises(ModelError, match=r"training_data\.toml: \['m\.onnx'\] needs data"):
        read_table(table)
    assert read_table(tmp_path / "none.toml") == {}
