"""Writes the service's environment file from the station config (called by install.sh).

``GENICAM_GENTL64_PATH`` is the folder list where GenTL consumers look for producers; the station
config names the producer files themselves (``[camera] cti_paths``), so the service gets their
folders. ``AOI_DATA_DIR`` is the data folder the installer created. Stdlib only: it runs with the
station's venv Python before anything else is known to work.

Usage: station_env.py STATION_TOML ENV_FILE DATA_DIR
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def gentl_folders(station_toml: Path) -> list[str]:
    """The folders of the config's ``cti_paths``, in order, each once (relative to the file)."""
    raw = tomllib.loads(station_toml.read_text(encoding="utf-8"))
    paths = raw.get("camera", {}).get("cti_paths", [])
    folders: list[str] = []
    for p in map(Path, paths):
        folder = str((p if p.is_absolute() else station_toml.parent / p).parent)
        if folder not in folders:
            folders.append(folder)
    return folders


def env_text(folders: list[str], data_dir: str) -> str:
    lines = [
        "# Written by installer/install.sh from /etc/aoi/station.toml ([camera] cti_paths);",
        "# it is rewritten on every install: change station.toml and run install.sh again.",
        f"AOI_DATA_DIR={data_dir}",
    ]
    if folders:
        lines.append(f"GENICAM_GENTL64_PATH={':'.join(folders)}")
    else:
        lines.append("# No cti_paths in station.toml: set the vendor's producer folder, e.g.")
        lines.append("# GENICAM_GENTL64_PATH=/opt/vendor/lib/x86_64")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    station, env_file, data_dir = Path(argv[0]), Path(argv[1]), argv[2]
    try:
        folders = gentl_folders(station)
    except (OSError, tomllib.TOMLDecodeError, TypeError, AttributeError) as err:
        print(f"install: cannot read {station} ({err}); GENICAM_GENTL64_PATH left unset")
        folders = []
    env_file.write_text(env_text(folders, data_dir), encoding="utf-8")
    shown = ":".join(folders) or "(unset: no cti_paths in station.toml)"
    print(f"install: wrote {env_file} (GENICAM_GENTL64_PATH={shown})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
