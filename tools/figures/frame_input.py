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


def _bench(path: Path) -> dict:
    return json.loads(path.read_text().strip().splitlines()[-1])


def main(root: Path, out: Path) -> None:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=110)
    labels = []
    for y, (call, stem, label) in enumerate(ROWS):
        d = _bench(root / call / "r" / f"{stem}.txt")
        stages = d["stages_ms"]
        left = 0.0
        for name, colour in zip((*STAGES, "other"), COLOURS, strict=True):
            width = d["cycle_ms"]["p50"] - left if name == "other" else stages[name]["p50"]
            ax.barh(y, width, left=left, color=colour, label=name if y == 0 else None)
            left += width
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
