"""Fixtures of the plant tests: a private mosquitto of their own (skips where it is absent) and
a python-qpid-proton AMQP 1.0 peer on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plant_helpers import AmqpPeer, Mosquitto, free_port


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def peer() -> Iterator[AmqpPeer]:
    handler = AmqpPeer(free_port())
    handler.start()
    yield handler
    handler.stop()
