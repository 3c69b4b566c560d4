"""A dry run: the edited recipe on synthetic boards or on this station's stored images, off-line.

Qt-free. Nothing reaches the PLC, the database or the live screen: the dry run builds its own
backend and pipeline from the edited (unsaved) recipe and inspects ``boards`` frames. On stored
images it also says which boards would change verdict against what the line decided, which is
the question an engineer asks before a threshold goes live.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from aoi.app.rig import Rig
from aoi.config import StationConfig
from aoi.errors import AoiError
from aoi.pipeline import Pipeline
from aoi.recipe import LoadedRecipe
from aoi.sources.replay import read_image
from aoi.stats import RunStats
from aoi.storage.db import DB_ERRORS, Database
from aoi.storage.tables import Inspection
from aoi.types import ErrorKind, Frame, InspectionResult

SYNTHETIC = "synthetic"
STORED = "stored"


@dataclass
class DryRunReport:
    source: str
    boards: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    board_accuracy: float | None = None
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    #: Stored boards whose verdict would change: (serial or id, line's verdict, dry run's).
    changed: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stopped: bool = False

    def summary(self) -> str:
        v = self.verdicts
        lines = [
            f"{self.boards} {self.source} boards" + (" (stopped early)" if self.stopped else ""),
            f"OK {v['OK']} · NG {v['NG']} · REVIEW {v['REVIEW']} · ERROR {v['ERROR']}",
            f"cycle p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms",
        ]
        if self.board_accuracy is not None:
            lines.append(f"verdict matches the known truth on {self.board_accuracy:.0%}")
        if self.source == STORED:
            n = len(self.changed)
            lines.append(f"{n} board{'s' if n != 1 else ''} would change verdict")
        return "\n".join(lines)


def stored_images(db: Database, recipe_name: str, limit: int) -> list[tuple[str, str, Path]]:
    """The newest archived images of a recipe: (serial or id, verdict the line gave, path)."""
    stmt = (
        select(
            Inspection.serial, Inspection.inspection_id, Inspection.verdict, Inspection.image_path
        )
        .where(Inspection.recipe_name == recipe_name, Inspection.image_path.is_not(None))
        .order_by(Inspection.inspected_at.desc())
        .limit(limit)
    )
    with db.session() as s:
        rows = s.execute(stmt).all()
    return [
        (serial or f"#{iid}", verdict, Path(path))
        for serial, iid, verdict, path in rows
        if Path(path).is_file()
    ]


def dry_run(
    loaded: LoadedRecipe,
    config: StationConfig,
    *,
    source: str = SYNTHETIC,
    boards: int = 20,
    db: Database | None = None,
    backend: str | None = None,
    threads: int = 1,
    stop: threading.Event | None = None,
) -> DryRunReport:
    """Inspect ``boards`` frames with ``loaded`` (edited, not saved) and report what it found."""
    report = DryRunReport(source)
    stored: list[tuple[str, str, Path]] = []
    if source == STORED:
        if db is None:
            report.errors.append("no database: nothing stored to run on")
            return report
        try:
            stored = stored_images(db, loaded.name, boards)
        except DB_ERRORS as err:
            report.errors.append(f"database unavailable: {str(err).splitlines()[0]}")
            return report
        if not stored:
            report.errors.append(f"no archived images of {loaded.name} yet; try synthetic boards")
            return report
    stats = RunStats(budget_ms=loaded.recipe.cycle_budget_ms)
    # The station's own assembly, without sinks or events: nothing reaches the PLC or the log.
    spec = SYNTHETIC if source == SYNTHETIC else None
    with Rig(loaded, config, source_spec=spec, backend=backend, threads=threads) as rig:
        pipeline = rig.pipeline
        if source == SYNTHETIC:
            for _ in range(boards):
                if stop is not None and stop.is_set():
                    report.stopped = True
                    break
                stats.add(pipeline.inspect(rig.source.grab(config.camera.fetch_timeout_s)))
        else:
            for i, (name, line_verdict, path) in enumerate(stored):
                if stop is not None and stop.is_set():
                    report.stopped = True
                    break
                result = _inspect_file(pipeline, path, i)
                stats.add(result)
                if result.verdict.name != line_verdict:
                    report.changed.append((name, line_verdict, result.verdict.name))
    summary = stats.summary()
    report.boards = stats.cycles
    report.verdicts = Counter(stats.verdicts)
    report.board_accuracy = stats.board_accuracy
    report.p50_ms = summary["cycle_ms"]["p50"]
    report.p99_ms = summary["cycle_ms"]["p99"]
    report.errors.extend(f"{k}: {n}" for k, n in stats.errors.items())
    return report


def _inspect_file(pipeline: Pipeline, path: Path, index: int) -> InspectionResult:
    import time

    try:
        image = read_image(path)
        frame = Frame(image, index, time.perf_counter_ns(), "stored", path.name)
    except (AoiError, ValueError) as err:
        return pipeline.error_result(ErrorKind.BAD_FRAME, str(err))
    return pipeline.inspect(frame)
