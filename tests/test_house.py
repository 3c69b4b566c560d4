"""The house (README "Architecture"): every module of the core sits in a layer of the contract.

import-linter checks the layers it is given; a new top-level module of ``aoi`` that no layer
names would escape it. This test makes such a module fail CI until it is placed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _layered_modules() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    [house] = [c for c in contracts if c["type"] == "layers"]
    names: set[str] = set()
    for layer in house["layers"]:
        names |= {part.strip() for part in layer.replace("|", ":").split(":")}
    return names


def test_every_module_of_the_core_is_in_a_layer() -> None:
    layered = _layered_modules()
    core = REPO / "aoi"
    modules = {f"aoi.{p.stem}" for p in core.glob("*.py") if p.stem != "__init__"}
    modules |= {f"aoi.{p.parent.name}" for p in core.glob("*/__init__.py")}
    assert modules, "found the core's modules"
    assert modules - layered == set(), "place these in the layers contract of pyproject.toml"


def test_the_gui_and_the_plc_link_are_layers_of_the_house() -> None:
    layered = _layered_modules()
    assert {"ui", "plc", "aoi.app", "aoi.cli"} <= layered
