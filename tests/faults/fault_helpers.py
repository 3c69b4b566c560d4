"""Helpers of the fault tests that are no fixtures."""

from __future__ import annotations

import contextlib
from pathlib import Path


def fill(folder: Path) -> Path:
    """Write zeros into ``folder/filler`` until its disk refuses more; the filler's path."""
    filler = folder / "filler"
    with contextlib.suppress(OSError), filler.open("ab") as f:
        while True:
            f.write(bytes(4096))
            f.flush()
    return filler
