"""The About box names the running recipe's model and its training data's terms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from aoi.model_terms import model_terms
from aoi.recipe import DEFAULT_RECIPE, find_recipe, load_recipe
from ui.app import Gui
from ui.logic.about import about_text

REPO = Path(__file__).resolve().parents[2]


def test_the_default_recipes_model_is_named_with_its_research_use_limit() -> None:
    loaded = load_recipe(find_recipe(DEFAULT_RECIPE), check_files=False)
    text = about_text(loaded.name, loaded.model_path)
    terms = model_terms(loaded.model_path)
    assert f"Recipe {loaded.name} runs the defect model {loaded.model_path.name}." in text
    assert terms.research_only  # the shipped default was trained on DeepPCB
    assert f"Trained on {terms.data}." in text
    assert "Research use only: DeepPCB's README restricts the data set to research use" in text


def test_a_synthetic_only_model_and_an_unknown_one() -> None:
    text = about_text("board-x", REPO / "models" / "aoi-defect-v1.onnx")
    assert "Trained on synthetic boards only" in text and "Research use only" not in text
    assert "Terms: ours (the project's MIT licence)" in text
    unknown = about_text("line-7", Path("/site/models/ours.onnx"))
    assert "ours.onnx: training data not stated" in unknown
    assert "No recipe is loaded" in about_text(None, None)


def test_the_top_bars_about_button_opens_the_box(
    open_gui: Callable[..., Gui], gui_recipe: Path, qtbot: QtBot
) -> None:
    window = open_gui(gui_recipe).window
    assert window is not None
    qtbot.mouseClick(window.about_button, Qt.MouseButton.LeftButton)
    box = window.about_button.box
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    assert "runs the defect model difference.onnx" in box.text()
    assert "training data not stated" in box.text()
    box.close()
