"""install.sh --root: the installed station runs from any folder with the wheel's recipes and
models, writes its config once, and --uninstall keeps config and data."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tomllib
from pathlib import Path

import pytest

from aoi.config import load_station_config
from aoi.recipe import load_recipe, recipes_dir
from tests.installer.conftest import CHECKOUT, Installed, clean_env, run_install

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def run_installed(installed: Installed, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(AOI_DATA_DIR=str(cwd / "data"), AOI_RECIPES_DIR=str(cwd / "site-recipes"))
    return subprocess.run(
        [str(installed.aoi), *args], capture_output=True, text=True, check=False, cwd=cwd, env=env
    )


def installed_python(installed: Installed, code: str) -> str:
    done = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
        cwd=installed.root,
    )  # fmt: skip  (cwd: ``python -c`` puts its folder first on sys.path)
    return done.stdout.strip()


def test_installed_station_inspects_from_outside_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    db = tmp_path / "x.db"
    done = run_installed(
        installed, tmp_path, "run", "--cycles", "5", "--plc", "none", "--db", f"sqlite:///{db}",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["cycles"] == 5
    assert summary["recipe"] == "board-a-640"
    # The wheel's recipe, template and model are the checkout's, byte for byte.
    assert summary["recipe_hash"] == load_recipe(recipes_dir() / "board-a-640.toml").content_hash
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from inspections").fetchone()[0] == 5


def test_the_wheel_holds_recipes_models_and_cards_but_no_training_code(
    installed: Installed, tmp_path: Path
) -> None:
    where = installed_python(
        installed, "import aoi, aoi.recipe as r; print(aoi.__file__); print(r.recipes_dir())"
    ).splitlines()
    site = installed.venv / "lib"
    assert Path(where[0]).is_relative_to(site), "the installed aoi must be the venv's copy"
    shipped = Path(where[1])
    assert shipped.is_relative_to(site)
    assert sorted(p.name for p in shipped.glob("*.toml")) == sorted(
        p.name for p in recipes_dir().glob("*.toml")
    )
    models = shipped.parent / "models"
    assert (models / "aoi-defect-v3.md").read_text(encoding="utf-8").startswith("#")
    # Every model and its card, and the table of their training data and terms.
    wanted = [
        p.name for p in (CHECKOUT / "models").glob("aoi-defect-v*") if p.suffix in (".md", ".onnx")
    ]
    assert sorted(p.name for p in models.iterdir()) == sorted([*wanted, "training_data.toml"])
    assert len(wanted) >= 6
    assert not list(site.glob("python*/site-packages/models"))
    names = sorted(str(p) for p in shipped.glob("*.toml"))
    done = run_installed(installed, tmp_path, "recipe", "validate", *names)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok ") == len(names)


def test_a_site_recipe_takes_precedence_over_the_shipped_one(
    installed: Installed, tmp_path: Path
) -> None:
    site = tmp_path / "site-recipes"  # the folder run_installed names as AOI_RECIPES_DIR
    site.mkdir()
    text = (recipes_dir() / "board-a-640.toml").read_text(encoding="utf-8")
    # A site copy of the default recipe, a newer version, pointing at the installed files.
    shipped = Path(installed_python(installed, "import aoi.recipe as r; print(r.recipes_dir())"))
    text = text.replace('"templates/', f'"{shipped}/templates/')
    text = text.replace('"../models/', f'"{shipped.parent}/models/')
    assert "\nversion = 1\n" in text
    text = text.replace("\nversion = 1\n", "\nversion = 7\n")
    (site / "board-a-640.toml").write_text(text, encoding="utf-8")
    done = run_installed(
        installed, tmp_path, "run", "--cycles", "1", "--plc", "none", "--db",
        f"sqlite:///{tmp_path / 'y.db'}", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    site_hash = load_recipe(site / "board-a-640.toml").content_hash
    assert summary["recipe_hash"] == site_hash
    assert site_hash != load_recipe(recipes_dir() / "board-a-640.toml").content_hash


def test_config_is_written_once_and_uninstall_keeps_config_and_data(
    installed: Installed, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    shutil.copytree(installed.root, root, symlinks=True)
    etc = root / "etc" / "aoi"
    config = etc / "station.toml"
    # The template's placeholders are filled and the result is a valid station config.
    text = config.read_text(encoding="utf-8")
    assert "@" not in text.replace("postgresql+psycopg://aoi@", "")
    assert load_station_config(config).storage.database_url == "sqlite:////var/lib/aoi/aoi.db"
    env_file = (etc / "aoi.env").read_text(encoding="utf-8")
    assert "AOI_DATA_DIR=/var/lib/aoi" in env_file

    # A station's edits and its own recipes survive a reinstall (an upgrade).
    edited = text.replace('station_id = "station-1"', 'station_id = "line-7"')
    config.write_text(edited, encoding="utf-8")
    (etc / "recipes" / "mine.toml").write_text("# a site recipe\n", encoding="utf-8")
    done = run_install(root, installed.wheelhouse)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kept existing /etc/aoi/station.toml" in done.stdout
    assert config.read_text(encoding="utf-8") == edited
    assert tomllib.loads(config.read_text(encoding="utf-8"))["station_id"] == "line-7"
    assert (etc / "recipes" / "mine.toml").read_text(encoding="utf-8") == "# a site recipe\n"

    data = root / "var" / "lib" / "aoi"
    (data / "aoi.db").write_bytes(b"inspections")
    done = run_install(root, installed.wheelhouse, "--uninstall")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (root / "opt" / "aoi").exists()
    assert not (root / "etc" / "systemd" / "system" / "aoi-station.service").exists()
    assert not (root / "usr" / "share" / "applications" / "aoi-gui.desktop").exists()
    assert config.read_text(encoding="utf-8") == edited
    assert (etc / "recipes" / "mine.toml").is_file()
    assert (data / "aoi.db").read_bytes() == b"inspections"


def test_root_install_writes_the_system_files_and_reports_what_it_skipped(
    installed: Installed,
) -> None:
    root = installed.root
    assert (root / "etc/systemd/system/aoi-station.service").is_file()
    desktop = (root / "usr/share/applications/aoi-gui.desktop").read_text(encoding="utf-8")
    assert "Exec=/opt/aoi/venv/bin/aoi gui --kiosk" in desktop
    sysctl = (root / "etc/sysctl.d/60-aoi-gige.conf").read_text(encoding="utf-8")
    assert "net.core.rmem_max" in sysctl
    assert "rp_filter" in sysctl
    out = installed.output
    assert "not running apt-get" in out
    assert "libxcb-cursor0" in out
    assert "not creating user aoi under --root" in out
    assert "mtu 9000" in out
    assert "aoi doctor" in out
