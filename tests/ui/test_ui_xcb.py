"""The fit test in a real X server (Xvfb, Qt's xcb platform), not only offscreen.

xcb lays out with the X server's fonts and window manager hints; a window that fits offscreen can
still come out taller there. Skipped where Xvfb is not installed (``apt-get install xvfb`` and the
libxcb packages of installer/install.sh's QT_APT_PACKAGES).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def x_display() -> Iterator[str]:
    """A fresh Xvfb on a display number it picks itself (``-displayfd``): never one in use."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read, write = os.pipe()
    args = [xvfb, "-displayfd", str(write), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"]
    with subprocess.Popen(args, pass_fds=(write,), stderr=subprocess.DEVNULL) as server:
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()
        try:
            if not number:
                pytest.skip("Xvfb did not start")
            yield f":{number}"
        finally:
            server.terminate()
            server.wait(10)


def test_every_screen_fits_at_1366x768_in_a_real_x_server(x_display: str) -> None:
    env = {
        **os.environ,
        "DISPLAY": x_display,
        "QT_QPA_PLATFORM": "xcb",
        "AOI_FIT_SIZES": "1366x768",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    test = "tests/ui/test_ui_layout.py::test_every_screen_fits_at_every_panel_size"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if "could not connect to display" in done.stdout + done.stderr:
        pytest.skip("Qt's xcb platform could not start (libxcb packages missing)")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout
