"""Fixtures of the plant tests: a private mosquitto of their own (skips where it is absent)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plant_helpers import Mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()
