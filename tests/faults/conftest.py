"""Fixtures of the fault tests: real broken parts (a full disk is a real, tiny tmpfs)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_helpers import fill


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a real 1 MB tmpfs of its own, for a disk that fills (needs root, as CI and
    the line PC's installer have; skips with the reason elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def full_disk(small_disk: Path) -> Path:
    """A folder on a tmpfs filled to the last byte."""
    fill(small_disk)
    return small_disk
