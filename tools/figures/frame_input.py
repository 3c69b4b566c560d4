"""Issue 15, eighth round: where the whole-frame panel's cycle goes, the padded batch uploaded
every board (``noframe``) against the frame uploaded once, from the device calls' bench JSON
(``tools/gpu/bench-issue15h/i/j.sh``; each call's ``r.tgz`` unpacked into DIR/<call>/).

    PYTHONPATH=. python tools/figures/frame_input.py DIR docs/figures/session10-frame-input.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: (call, file stem, label) of the panel rows shown, in order.
ROWS = (
    ("h", "panel-fp16-noframe", "h: padded batch"),
    ("h", "panel-fp16-frame", "h: frame"),
    ("i", "panel-fp16-noframe", "i: padded batch"),
    ("i", "panel-fp16-a", "i: frame, a"),
    ("i", "panel-fp16-b", "i: frame, b"),
    ("j", "panel-fp16-noframe", "j: padded batch"),
    ("j", "panel-fp16-a", "j: frame, a"),
    ("j", "panel-fp16-b", "j: frame, b"),
    ("j", "panel-fp16-c", "j: frame, c"),
)
STAGES = ("register", "preprocess", "infer", "postprocess")
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#999999")


def bench_json(path: Path) -> dict:
    """The JSON summary an ``aoi bench --json`` run printed last."""
    return json.loads(path.read_text().strip().splitlines()[-1])


def stage_bars(ax: object, y: float, bench: dict, stages: tuple[str, ...], colours: tuple[str, ...],
               legend: bool) -> float:  # fmt: skip
    """One row of stacked bars: each of ``stages`` at p50, then "other" up to the cycle's p50
    (``colours`` has one more entry for it); the row's right end, the cycle p50."""
    left = 0.0
    for name, colour in zip((*stages, "other"), colours, strict=True):
        p50 = bench["cycle_ms"]["p50"]
        width = p50 - left if name == "other" else bench["stages_ms"][name]["p50"]
        ax.barh(y, width, left=left, color=colour, label=name if legend else None)
        left += width
    return left


def main(root: Path, out: Path) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=110)
    labels = []
    for y, (call, stem, label) in enumerate(ROWS):
        d = bench_json(root / call / "r" / f"{stem}.txt")
        stage_bars(ax, y, d, STAGES, COLOURS, legend=y == 0)
        p99 = d["cycle_ms"]["p99"]
        ax.plot([p99], [y], marker="|", markersize=18, color="black", mew=2)
        ax.text(p99 + 0.3, y, f"p99 {p99:.1f}", va="center", fontsize=8)
        labels.append(label)
    ax.axvline(20.0, color="black", linestyle="--", linewidth=1)
    ax.text(20.1, len(ROWS) - 0.4, "target p99 20 ms", fontsize=8)
    ax.set_yticks(range(len(ROWS)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("ms per board: stages at p50 (bars), cycle p99 (tick)")
    ax.set_title(
        "Whole-frame panel 4096x3000, H200, ORT CUDA FP16, 300 pre-rendered boards per row",
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, 32)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
