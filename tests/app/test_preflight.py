"""`aoi doctor`'s pre-flight checks against real parts: folders, a database, recipes, ports."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from aoi.app.preflight import (
    _debian_package,
    _missing_xcb_libs,
    check_data_folder,
    check_database,
    check_plc,
    check_qt,
    check_recipes,
    check_service,
)
from aoi.cli import main
from aoi.config import PlcConfig, StationConfig
from aoi.storage.db import Database

RecipeFactory = Callable[..., Path]


def test_a_data_folder_that_cannot_be_made_fails_and_says_what_to_do(tmp_path: Path) -> None:
    # A file where a folder must go: refused even for root (which ignores permission bits).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    check = check_data_folder(blocker / "data", min_free_gb=0)
    assert not check.ok and check.fatal
    assert "not writable" in check.detail and "AOI_DATA_DIR" in check.fix
    assert check_data_folder(tmp_path / "data", min_free_gb=0).ok
    assert (tmp_path / "data").is_dir() and not list((tmp_path / "data").iterdir())


def test_a_disk_without_room_for_the_archive_fails(tmp_path: Path) -> None:
    free_gb = shutil.disk_usage(tmp_path).free / 1e9
    check = check_data_folder(tmp_path, min_free_gb=free_gb * 2 + 1)
    assert not check.ok and "GB free" in check.detail and "min_free_gb" in check.fix


def test_the_database_must_be_reachable_and_at_the_head_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'aoi.db'}"
    with Database(url) as db:
        db.upgrade("0001")
        head = db.head_revision()
    behind = check_database(url)
    assert not behind.ok and "0001" in behind.detail and head in behind.detail
    with Database(url) as db:
        db.upgrade()
    assert check_database(url).ok
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unreachable = check_database(f"sqlite:///{blocker / 'aoi.db'}")
    assert not unreachable.ok and "database_url" in unreachable.fix


def test_duplicate_product_codes_and_a_broken_model_are_errors(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    a, b = make_recipe("board-a"), make_recipe("board-b")  # both product_code = 7
    checks = check_recipes(tmp_path)
    dup = [c for c in checks if c.name == "recipes"]
    assert len(dup) == 1 and not dup[0].ok and dup[0].fatal
    assert "product code 7" in dup[0].detail and a.name in dup[0].detail
    assert b.name in dup[0].detail
    b.write_text(b.read_text().replace("product_code = 7", "product_code = 8"))
    assert all(c.ok for c in check_recipes(tmp_path))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    make_recipe("board-c", model=broken).write_text(
        (tmp_path / "board-c.toml").read_text().replace("product_code = 7", "product_code = 9")
    )
    bad = [c for c in check_recipes(tmp_path) if not c.ok]
    assert len(bad) == 1 and "board-c.toml" in bad[0].detail and "recipe check" in bad[0].fix


def test_an_empty_recipes_folder_fails(tmp_path: Path) -> None:
    (check,) = check_recipes(tmp_path)
    assert not check.ok and "no recipe" in check.detail


def test_the_plc_port_must_be_free_for_the_server_and_open_for_the_client() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = StationConfig(plc=PlcConfig(role="server", host="127.0.0.1", port=port))
        check = check_plc(server)
        assert not check.ok and check.fatal and str(port) in check.fix
        client = StationConfig(plc=PlcConfig(role="client", host="127.0.0.1", port=port))
        assert check_plc(client).ok
    # Closed now: free for the server, nothing for the client to reach.
    assert check_plc(server).ok
    down = check_plc(client)
    assert not down.ok and "not reachable" in down.detail


def test_qt_names_the_missing_system_libraries_as_debian_packages() -> None:
    assert _debian_package("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert _debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert _debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    check = check_qt()
    assert not check.fatal  # only `aoi gui` needs Qt: `aoi run` does not
    spec = importlib.util.find_spec("PySide6")
    assert spec is not None and spec.origin is not None
    pyside = Path(spec.origin).parent
    plugin = pyside / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    if plugin.is_file() and shutil.which("ldd"):
        ldd = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, check=True)
        missing = {ln.split()[0] for ln in ldd.stdout.splitlines() if "not found" in ln}
        assert set(_missing_xcb_libs(pyside)) == missing
        assert check.ok == (not missing)
        for lib in missing:
            assert lib in check.detail and _debian_package(lib) in check.fix


def test_the_service_state_is_reported_not_fatal() -> None:
    check = check_service()
    assert not check.fatal
    if shutil.which("systemctl") is None:
        assert "not installed as a service" in check.detail
    else:
        assert "aoi-station" in check.detail or "systemd is not running" in check.detail


def test_doctor_exits_non_zero_with_one_line_per_problem_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["doctor", "--json", "--data-dir", str(blocker / "data")])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    fails = [ln for ln in out if ln.strip().startswith("FAIL")]
    assert any("data" in ln and "->" in ln for ln in fails), out
    report = json.loads(out[-1])
    data = next(c for c in report["preflight"] if c["name"] == "data")
    assert data["ok"] is False and data["fatal"] is True
    assert main(["doctor", "--data-dir", str(tmp_path / "data")]) == 0
