"""Write the panel recipe as one whole frame (``mode = "full"``, 4096x3000 padded to 4096x3008)
for a side-by-side bench with the shipped tiled recipe (issue 15: the panel on the GPU).

    python3 tools/gpu/panel_full.py OUT.toml
"""

from __future__ import annotations

import sys
from pathlib import Path

import tomlkit

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "recipes" / "panel-c-4096x3000.toml"


def main(out: Path) -> None:
    doc = tomlkit.parse(SOURCE.read_text())
    doc["name"] = "panel-c-4096x3000-full"
    doc["template"] = str((SOURCE.parent / str(doc["template"])).resolve())
    doc["model"]["path"] = str((SOURCE.parent / str(doc["model"]["path"])).resolve())
    g = doc["geometry"]
    g["mode"] = "full"
    for key in ("tile_width_px", "tile_height_px", "tile_overlap_px"):
        g.pop(key, None)
    for corner in ("min", "opt", "max"):
        shape = tomlkit.inline_table()
        shape.update({"batch": 1, "height_px": 3008, "width_px": 4096})
        g["profile"][corner] = shape
    out.write_text(tomlkit.dumps(doc))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
