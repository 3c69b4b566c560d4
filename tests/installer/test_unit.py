"""The systemd unit passes ``systemd-analyze verify``; the apt list covers PySide6's xcb plugin."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.installer.conftest import CHECKOUT, INSTALL_SH, Installed

UNIT = CHECKOUT / "installer" / "aoi-station.service"


@pytest.mark.slow
@pytest.mark.integration
def test_systemd_analyze_verify_accepts_the_unit(installed: Installed, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing (Debian package systemd)")
    # verify checks that ExecStart's program exists: point it at the installed one under root.
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/aoi/venv/bin/aoi", str(installed.aoi)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    # Unknown keys are only warnings (exit 0): any line about the unit is a failure.
    assert done.returncode == 0, done.stderr
    assert UNIT.name not in done.stderr, done.stderr
    text = UNIT.read_text()
    start = "ExecStart=/opt/aoi/venv/bin/aoi run --station /etc/aoi/station.toml"
    for line in ("Type=notify", "WatchdogSec=10s", "Restart=on-failure", "User=aoi", start):
        assert f"\n{line}\n" in text


def _apt_list() -> set[str]:
    text = INSTALL_SH.read_text()
    block = re.search(r"QT_APT_PACKAGES=\((.*?)\)", text, re.S)
    assert block is not None
    return set(block.group(1).split())


def _package_of(line: str) -> str | None:
    """The Debian package of one ``ldd`` line's library (by dpkg, or by soname if missing)."""
    soname, _, rest = line.strip().partition(" => ")
    if "not found" in rest:
        # Debian names a library's package after its soname: libxcb-icccm.so.4 -> libxcb-icccm4.
        name, _, version = soname.partition(".so.")
        return f"{name}{'-' if name[-1].isdigit() else ''}{version}".lower()
    path = rest.split(" (")[0]
    if not path.startswith("/") or "PySide6" in path:
        return None
    real = str(Path(path).resolve())
    for candidate in (real, real.removeprefix("/usr")):
        found = subprocess.run(
            ["dpkg", "-S", candidate], capture_output=True, text=True, check=False
        )
        if found.returncode == 0:
            return found.stdout.split(":")[0]
    return None


def test_the_apt_list_covers_what_pyside6s_xcb_plugin_links() -> None:
    pyside6 = pytest.importorskip("PySide6")
    plugin = Path(pyside6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if not plugin.is_file() or not shutil.which("ldd") or not shutil.which("dpkg"):
        pytest.skip("needs PySide6's libqxcb.so, ldd and dpkg")
    ldd = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True)
    packages = {p for p in map(_package_of, ldd.stdout.splitlines()) if p}
    # The X11/xcb/xkb libraries are what a fresh Debian lacks; the rest is the base system.
    x_libs = {p for p in packages if p.startswith(("libxcb", "libx11", "libxkbcommon"))}
    assert x_libs, ldd.stdout
    assert x_libs <= _apt_list(), sorted(x_libs - _apt_list())
