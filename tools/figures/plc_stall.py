"""The PLC link's longest gap between polls while the station switches recipes (LOAD_RECIPE).

    .venv/bin/python tools/figures/plc_stall.py [SWITCHES]

Opens the station with the soft PLC, then asks for panel-c (product code 201) and board-a (101)
in turn, the way the link's LOAD_RECIPE does, and prints each switch's time and the longest gap
between two reads of the PLC block. Run it beside two ``python3 -c 'while True: pass'`` for a
loaded machine. A CPU rig tunes malloc (aoi/heap.py; ``AOI_RETAIN_HEAP=0`` leaves
glibc's defaults). Figures: docs/benchmarks.md, "Faults (issue 12)".
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

from aoi.app.station import Station, StationOptions
from aoi.recipe import find_recipe


def main(switches: int) -> None:
    first = find_recipe("board-a-640")
    with tempfile.TemporaryDirectory() as data:
        options = StationOptions(
            recipe=str(first), data_dir=Path(data), plc="sim", threads=2, recipes_dir=first.parent
        )
        with Station(options) as station:
            assert station.plc is not None
            link = station.plc.link
            stamps: list[float] = []
            read = link.peer.read

            def timed_read(block):  # type: ignore[no-untyped-def]
                stamps.append(time.monotonic())
                return read(block)

            link.peer.read = timed_read  # type: ignore[method-assign]
            change = link.on_recipe_change
            assert change is not None
            worst = 0.0
            for i in range(switches):
                stamps.clear()
                t0 = time.monotonic()
                change(201 if i % 2 == 0 else 101)
                t1 = time.monotonic()
                seen = [t0, *(t for t in stamps if t0 <= t <= t1), t1]
                gap = max(b - a for a, b in itertools.pairwise(seen))
                worst = max(worst, gap)
                print(
                    f"switch {i}: {1000 * (t1 - t0):.0f} ms, longest poll gap {1000 * gap:.0f} ms"
                )
            print(f"longest poll gap over {switches} switches: {1000 * worst:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
