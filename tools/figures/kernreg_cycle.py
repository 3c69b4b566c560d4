"""Issue 15: where a 640 px board's GPU cycle goes, beside the network alone and YOLO11n alone,
from the device calls' bench output (each call's ``r.tgz`` unpacked into DIR/<call>/).

Thirteenth round (``session16``, calls w and x: ``tools/gpu/bench-issue15w.sh``, ``-x.sh``):
registration as ONNX graphs, as CUDA kernels with the fit on the host, and as one launch with the
fit on the device. Fourteenth round (``session17``, call z3: ``bench-issue15z3.sh``): the
network after registration, queued behind it on one stream, or both captured as one CUDA graph.

    PYTHONPATH=. python tools/figures/kernreg_cycle.py DIR docs/figures/session16-kernreg.png
    PYTHONPATH=. python tools/figures/kernreg_cycle.py DIR docs/figures/session17-chain.png \
        session17
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tools.figures.frame_input import bench_json, stage_bars

#: Per figure: the (call, file stem, label) of the deeppcb-640 rows shown in order (the calls
#: in their order), its title, and whether ours alone with a CUDA graph is shown too.
FIGURES = {
    "session16": (
        tuple(
            (call, f"deeppcb-640-{kind}-{k}", f"{call}: {label}, {k}")
            for call, kind, label in (
                ("w", "onnx", "ONNX graphs"),
                ("w", "kern", "kernels, fit on host"),
                ("x", "onnx", "ONNX graphs"),
                ("x", "kern", "kernels, one launch"),
            )
            for k in "abc"
        ),
        "deeppcb-640 on an H200, ORT CUDA, 1000 pre-rendered boards per row (calls w and x)",
        False,
    ),
    "session17": (
        tuple(
            ("z3", f"deeppcb-640-{kind}-{k}", f"z3: {label}, {k}")
            for kind, label in (
                ("nochain", "network after registration"),
                ("queued", "network queued behind it"),
                ("captured", "both as one CUDA graph"),
            )
            for k in "abc"
        ),
        "deeppcb-640 on an H200, ORT CUDA, 1000 pre-rendered boards per row (call z3)",
        True,
    ),
}
STAGES = ("register", "infer", "postprocess", "decide")
COLOURS = ("#4c72b0", "#55a868", "#c44e52", "#8172b2", "#999999")


def _alone(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return {("ours" if "aoi-defect" in r["model"] else "yolo11n"): r for r in rows}


def main(root: Path, out: Path, figure: str = "session16") -> None:
    rows, title, graph_alone = FIGURES[figure]
    calls = dict.fromkeys(row[0] for row in rows)
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6.4), dpi=110)
    labels = []
    y = 0
    for call in calls:
        alone = _alone(root / call / "r" / "peer-alone.txt")
        ours = alone["ours"]["iobinding"]["p50_ms"]
        bars = [
            ("ours alone, IO binding", ours, "#55a868"),
            ("YOLO11n alone, CUDA graph", alone["yolo11n"]["iobinding+cuda_graph"]["p50_ms"],
             "#dddddd"),
        ]  # fmt: skip
        if graph_alone:  # ours with a CUDA graph too (the steadier of the two)
            graph = alone["ours"]["iobinding+cuda_graph"]["p50_ms"]
            bars.insert(1, ("ours alone, CUDA graph", graph, "#8fc79a"))
        for name, value, colour in bars:
            ax.barh(y, value, color=colour, hatch="//", edgecolor="white")
            ax.text(value + 0.02, y, f"{value:.2f}", va="center", fontsize=8)
            labels.append(f"{call}: {name}")
            y += 1
        n = sum(row[0] == call for row in rows)
        span = [y - 2.5, y + n - 0.5]
        ax.plot([1.5 * ours] * 2, span, color="black", linestyle="--", linewidth=1)
        ax.text(1.5 * ours + 0.02, y - 2.2, f"1.5 x ours alone ({call})", fontsize=8)
        for row_call, stem, label in rows:
            if row_call != call:
                continue
            d = bench_json(root / call / "r" / f"{stem}.txt")
            left = stage_bars(ax, y, d, STAGES, COLOURS, legend=y == len(bars))
            ax.text(left + 0.02, y, f"{left:.2f}", va="center", fontsize=8)
            labels.append(label)
            y += 1
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per board at p50: the cycle's stages (bars), a network alone (hatched)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, 3.0)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:4])
