"""``aoi doctor``'s pre-flight of a line PC: can this station run here, and if not, what to do.

Each check looks at the real thing (writes a file in the data folder, opens the database, loads
every recipe and its model, binds the PLC port, runs ``ldd`` on Qt's xcb plugin, asks
systemctl) and gives one :class:`Check`; a failed check that stops the station (``fatal``)
makes ``aoi doctor`` exit non-zero. The line printed for a failed check says what to do.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from aoi.app.recipe_check import StartCheck
from aoi.app.recipes import duplicate_product_codes
from aoi.config import StationConfig
from aoi.errors import AoiError
from aoi.recipe import load_recipe
from aoi.storage.db import DB_ERRORS, Database, default_url

#: Free space the data folder needs besides the archive's ``min_free_gb`` (journal, database).
HEADROOM_GB = 1.0


@dataclass(frozen=True)
class Check:
    """One pre-flight finding: what was checked, whether it passed, and what to do if not."""

    name: str
    ok: bool
    detail: str
    #: What to do, one line (empty when it passed).
    fix: str = ""
    #: The station cannot run while this fails (else: a warning).
    fatal: bool = True

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.fatal else "warn")
        tail = f" -> {self.fix}" if self.fix and not self.ok else ""
        return f"{mark} {self.name:<10} {self.detail}{tail}"


def check_data_folder(folder: Path, min_free_gb: float) -> Check:
    """The data folder exists (or can be made), takes a file, and has room for the archive."""
    probe = folder / ".aoi-doctor-probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        fix = f"make {folder} a writable folder for the station's user (or set AOI_DATA_DIR)"
        return Check("data", False, f"{folder} is not writable ({err})", fix)
    free_gb = shutil.disk_usage(folder).free / 1e9
    need = min_free_gb + HEADROOM_GB
    if free_gb < need:
        fix = f"free disk space under {folder} or lower [storage] min_free_gb"
        detail = f"{folder}: {free_gb:.1f} GB free, the archive keeps {min_free_gb:g} GB + "
        return Check("data", False, detail + f"{HEADROOM_GB:g} GB headroom", fix)
    return Check("data", True, f"{folder} writable, {free_gb:.1f} GB free (needs {need:g})")


def check_database(url: str) -> Check:
    """The database answers and its schema is at this aoi's head migration."""
    try:
        with Database(url) as db:
            current, head = db.current_revision(), db.head_revision()
            shown = db.display
    except (AoiError, *DB_ERRORS) as err:
        return Check("database", False, str(err), "check [storage] database_url and the server")
    if current is None:
        return Check("database", True, f"{shown} empty: created at {head} on the first run")
    if current != head:
        fix = "run `aoi run --cycles 1` once to migrate, or upgrade aoi if the database is newer"
        return Check("database", False, f"{shown} at revision {current}, head is {head}", fix)
    return Check("database", True, f"{shown} at head revision {head}")


def check_recipes(folder: Path) -> list[Check]:
    """Every recipe in ``folder`` valid, its template and model loadable, product codes unique."""
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        return [Check("recipes", False, f"no recipe in {folder}", f"put recipes into {folder}")]
    checks: list[Check] = []
    starts = StartCheck()  # what `aoi recipe validate` and a start check; once per model
    for path in paths:
        try:
            starts(load_recipe(path))
        except AoiError as err:
            fix = f"fix {path.name} (`aoi recipe check {path}`) or move it out of {folder}"
            checks.append(Check("recipe", False, f"{path.name}: {err}", fix))
            continue
        checks.append(Check("recipe", True, f"{path.name}: template and model load"))
    for dup in duplicate_product_codes(paths):  # the one check `aoi recipe validate` makes
        names = ", ".join(p.name for p in dup.files)
        detail = f"product code {dup.product_code} is claimed by {names}"
        checks.append(Check("recipes", False, detail, "give each recipe its own product_code"))
    return checks


def check_cameras(genicam: dict[str, object], *, named: bool) -> Check:
    """Verdict on ``aoi doctor``'s GenTL block (producers found, cameras listed): fatal when
    the station config names a camera, a warning on a desk PC that inspects synthetic boards."""
    fix = "set [camera] cti_paths or GENICAM_GENTL64_PATH to the camera maker's .cti folder"
    if not genicam.get("ok"):
        return Check("camera", False, str(genicam.get("detail")), fix, fatal=named)
    cams = genicam.get("cameras")
    if not cams:
        detail = str(genicam.get("cameras_error") or "the producers list no camera")
        fix = "check the camera's cable, power and IP settings"
        return Check("camera", False, detail, fix, fatal=named)
    return Check("camera", True, f"cameras: {cams}", fatal=named)


def check_plc(config: StationConfig) -> Check:
    """Server role: the PLC port is free to listen on; client role: the PLC answers TCP."""
    plc = config.plc
    where = f"{plc.host}:{plc.port}"
    if plc.role == "server":
        try:
            with socket.socket(socket.AF_INET6 if ":" in plc.host else socket.AF_INET) as s:
                s.bind((plc.host, plc.port))
        except OSError as err:
            fix = f"stop what listens on {where} (`ss -ltnp`), or change [plc] port"
            if plc.port < 1024:
                fix += "; ports below 1024 need CAP_NET_BIND_SERVICE"
            return Check("plc", False, f"cannot listen on {where} ({err})", fix)
        return Check("plc", True, f"port {where} free to serve the PLC")
    try:
        with socket.create_connection((plc.host, plc.port), timeout=3.0):
            pass
    except OSError as err:
        fix = "check the PLC's power, cable and IP, and [plc] host/port"
        return Check("plc", False, f"PLC at {where} not reachable ({err})", fix)
    return Check("plc", True, f"PLC at {where} accepts connections")


def check_qt() -> Check:
    """PySide6 imports (in a child: the core never imports Qt) and its xcb plugin's libraries."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or spec.origin is None:
        fix = "pip install 'aoi-station[gui]' (only `aoi gui` needs it)"
        return Check("qt", False, "PySide6 not installed", fix, fatal=False)
    done = subprocess.run(
        [sys.executable, "-c", "import PySide6.QtGui"], capture_output=True, text=True, check=False
    )
    missing = _missing_xcb_libs(Path(spec.origin).parent)
    if missing:
        fix = "install the GUI's system libraries: " + " ".join(_debian_package(m) for m in missing)
        return Check("qt", False, f"Qt's xcb plugin misses {', '.join(missing)}", fix, fatal=False)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        return Check("qt", False, f"import PySide6.QtGui: {detail}", "reinstall PySide6", False)
    return Check("qt", True, "PySide6.QtGui imports; xcb plugin libraries present", fatal=False)


def _missing_xcb_libs(pyside: Path) -> list[str]:
    plugin = pyside / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    ldd = shutil.which("ldd")
    if not plugin.is_file() or ldd is None:
        return []
    done = subprocess.run(  # noqa: S603 (the system's ldd on Qt's own plugin)
        [ldd, str(plugin)], capture_output=True, text=True, check=False
    )
    # A library several of the plugin's dependencies need is listed once per need: once here.
    missing = (ln.split()[0] for ln in done.stdout.splitlines() if "not found" in ln)
    return list(dict.fromkeys(missing))


def _debian_package(soname: str) -> str:
    """``libxcb-cursor.so.0`` -> ``libxcb-cursor0`` (Debian names a library by its soname)."""
    stem, _, version = soname.partition(".so")
    version = version.strip(".").split(".")[0]
    return f"{stem}{'-' if stem[-1].isdigit() else ''}{version}" if version else stem


def check_service(unit: str = "aoi-station") -> Check:
    """The systemd unit's state (informational: a desk PC runs no service)."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return Check("service", True, "no systemctl: not installed as a service", fatal=False)
    done = subprocess.run(  # noqa: S603 (fixed arguments)
        [systemctl, "is-active", unit], capture_output=True, text=True, check=False
    )
    state = done.stdout.strip() or "unknown"
    if "not been booted with systemd" in done.stderr:
        return Check("service", True, "systemd is not running here: not a service", fatal=False)
    if state in ("active", "activating", "reloading"):
        return Check("service", True, f"{unit} is {state}", fatal=False)
    fix = f"`systemctl enable --now {unit}` (installer/install.sh installs it)"
    return Check("service", False, f"{unit} is {state}", fix, fatal=False)


def preflight(
    config: StationConfig,
    data_dir: Path,
    recipes_folder: Path,
    *,
    genicam: dict[str, object] | None = None,
) -> list[Check]:
    """Every pre-flight check for a station with ``config``, in the order they are printed."""
    s = config.storage
    checks = [
        check_data_folder(data_dir, s.min_free_gb if s.archive_images else 0.0),
        check_database(s.database_url or default_url(data_dir)),
        *check_recipes(recipes_folder),
    ]
    if genicam is not None:
        named = bool(config.camera.cti_paths or config.camera.device)
        checks.append(check_cameras(genicam, named=named))
    if "plc" in config.model_fields_set:
        checks.append(check_plc(config))
    checks += [check_qt(), check_service()]
    return checks
