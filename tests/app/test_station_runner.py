"""The Qt-free station runner: start and stop on a worker thread, rig swaps, shift counters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from aoi.app.rig import Rig
from aoi.config import StationConfig
from aoi.recipe import load_recipe
from aoi.runner import RunState, ShiftCounters, StationRunner, shift_label, shift_start
from aoi.types import ErrorKind, InspectionResult, Trigger, Verdict

RecipeFactory = Callable[..., Path]


@contextmanager
def _rig_factory(recipe: Path) -> Iterator[Callable[[], Rig]]:
    """The station's own rigs (synthetic boards, ONNX Runtime on one thread), all closed after."""
    loaded = load_recipe(recipe)
    made: list[Rig] = []

    def make() -> Rig:
        rig = Rig(
            loaded, StationConfig(), source_spec="synthetic", backend="onnxruntime", threads=1
        )
        made.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in made:
            if not rig.closed:
                rig.close()


def _result(verdict: Verdict, cycle_ms: float = 10.0, over: bool = False) -> InspectionResult:
    from aoi.types import Defect, Defects

    one = [Defect(1, "open", (0, 0, 4, 4), 16, 0.9)] if verdict is Verdict.NG else []
    defects = Defects.from_items(one)
    return InspectionResult(
        1,
        0,
        "b",
        "r",
        "h",
        "m",
        "onnxruntime-cpu",
        verdict,
        defects,
        Defects.empty(),
        {},
        cycle_ms,
        over,
        None,
        error="x" if verdict is Verdict.ERROR else "",
        error_kind=ErrorKind.OTHER if verdict is Verdict.ERROR else ErrorKind.NONE,
    )


@pytest.mark.parametrize(
    ("hour", "starts", "expected"),
    [
        (7, (6, 14, 22), "2025-03-04 S1 (06:00)"),
        (14, (6, 14, 22), "2025-03-04 S2 (14:00)"),
        (23, (6, 14, 22), "2025-03-04 S3 (22:00)"),
        (3, (6, 14, 22), "2025-03-03 S3 (22:00)"),  # after midnight: yesterday's night shift
        (3, (0,), "2025-03-04 S1 (00:00)"),
    ],
)
def test_shift_of_a_local_time(hour: int, starts: tuple[int, ...], expected: str) -> None:
    start, index = shift_start(datetime(2025, 3, 4, hour, 30), starts)
    assert shift_label(start, index) == expected


def test_counters_fpy_window_and_shift_change() -> None:
    now = [datetime(2025, 3, 4, 13, 59).timestamp()]
    c = ShiftCounters(50.0, window=4, chart_points=3, clock=lambda: now[0])
    c.seed({Verdict.OK: 2})
    for v, ms, over in [
        (Verdict.OK, 10, False),
        (Verdict.NG, 20, False),
        (Verdict.REVIEW, 30, False),
        (Verdict.ERROR, 60, True),
        (Verdict.OK, 40, False),
    ]:
        c.add(_result(v, ms, over))
    s = c.snapshot()
    assert (s.inspected, s.ok, s.ng, s.review, s.error, s.over_budget) == (7, 4, 1, 1, 1, 1)
    assert s.fpy == pytest.approx(4 / 7)
    assert s.recent_ms == (30, 60, 40) and s.recent_over == (False, True, False)
    assert s.window == 4 and s.p50_ms == pytest.approx(35.0)
    now[0] = datetime(2025, 3, 4, 14, 1).timestamp()  # the next shift starts at 14:00
    s = c.snapshot()
    assert s.inspected == 0 and s.fpy is None and s.shift.endswith("S2 (14:00)")
    assert s.recent_ms, "the cycle-time chart runs across shifts"


def test_runner_starts_stops_and_swaps_rigs_between_boards(make_recipe: RecipeFactory) -> None:
    recipe = make_recipe(registration="none")
    seen: list[InspectionResult] = []
    online: list[bool] = []
    with _rig_factory(recipe) as make:
        first = make()
        runner = StationRunner(
            first, ShiftCounters(50.0), on_result=seen.append, set_online=online.append
        )
        assert runner.start()
        assert not runner.start(), "a second start while running is refused"
        deadline = time.monotonic() + 60
        while runner.cycles_done < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        second = make()
        runner.switch_rig(second)
        while not first.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert first.closed and runner.rig is second
        runner.stop()
        assert runner.wait(60) and runner.state is RunState.STOPPED
        assert online == [True, False, False]
        n = runner.cycles_done
        assert n >= 3 and len(seen) == n == runner.counters.snapshot().inspected
        assert runner.start(cycles=2) and runner.wait(60)
        assert runner.cycles_done == 2
        runner.close()
        second.close()


class _Triggers:
    """A PLC stand-in: hands out parts; counts what was announced."""

    def __init__(self) -> None:
        self.sequence = 0
        self.online = False
        self.lock = threading.Lock()

    def wait_trigger(self, timeout_s: float) -> Trigger | None:
        time.sleep(min(timeout_s, 0.005))
        with self.lock:
            if not self.online:
                return None
            self.sequence += 1
            return Trigger(self.sequence, f"S{self.sequence}")

    def set_online(self, online: bool) -> None:
        with self.lock:
            self.online = online


def test_stop_with_a_plc_answers_every_announced_part(make_recipe: RecipeFactory) -> None:
    recipe = make_recipe(registration="none")
    seen: list[InspectionResult] = []
    triggers = _Triggers()
    with _rig_factory(recipe) as make:
        rig = make()
        runner = StationRunner(
            rig,
            ShiftCounters(50.0),
            triggers=triggers,
            set_online=triggers.set_online,
            on_result=seen.append,
        )
        runner.start()
        deadline = time.monotonic() + 60
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        runner.stop()
        assert runner.wait(60)
        assert [r.part_sequence for r in seen] == list(range(1, triggers.sequence + 1))
        assert all(np.isfinite(r.cycle_ms) for r in seen)
        runner.close()
        rig.close()
