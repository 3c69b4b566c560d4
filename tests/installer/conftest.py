"""An installed station under a temporary root: the checkout's wheel, installed by install.sh.

The wheel is built from the checkout (``pip wheel --no-deps``); its dependencies are not in the
wheelhouse (that would mean downloading PySide6, onnxruntime and OpenCV on every run), so
install.sh's ``--extra-site`` points the new venv at this test run's site-packages for them.
The station's own code, recipes, templates and models come from the wheel only: the tests
check that the installed ``aoi`` is the venv's copy, never the checkout's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
INSTALL_SH = CHECKOUT / "installer" / "install.sh"


@dataclass(frozen=True)
class Installed:
    """A ``--root`` install: the root folder, the wheelhouse and install.sh's output."""

    root: Path
    wheelhouse: Path
    output: str

    @property
    def venv(self) -> Path:
        return self.root / "opt" / "aoi" / "venv"

    @property
    def aoi(self) -> Path:
        return self.venv / "bin" / "aoi"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without PYTHONPATH (which would put the checkout's ``aoi`` first)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def run_install(root: Path, wheelhouse: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        "bash", str(INSTALL_SH), "--root", str(root), "--wheelhouse", str(wheelhouse),
        "--python", sys.executable, "--extra-site", sysconfig.get_path("purelib"), *args,
    ]  # fmt: skip
    return subprocess.run(
        cmd, capture_output=True, text=True, check=False, cwd=root.parent, env=clean_env()
    )


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheelhouse holding the checkout's wheel (built through the sdist-free in-tree path)."""
    out = tmp_path_factory.mktemp("wheelhouse")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(CHECKOUT)],
        capture_output=True, text=True, check=False, env=clean_env(),
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert len(list(out.glob("aoi_station-*.whl"))) == 1
    return out


@pytest.fixture(scope="session")
def installed(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("install") / "root"
    done = run_install(root, wheelhouse)
    assert done.returncode == 0, done.stdout + done.stderr
    return Installed(root, wheelhouse, done.stdout)
