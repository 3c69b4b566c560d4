"""A bug inside the station answers the part ERROR and never kills the cycle's thread.

No real part of the station raises a ``KeyError`` or a ``ZeroDivisionError`` on purpose, so these
tests put one in: a source and a backend that wrap the real synthetic source and ONNX Runtime
backend and raise on the boards the test names. That stand-in for a bug is the only thing
faked; the pipeline, runner and PLC triggers around it are the station's own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aoi.app.rig import Rig
from aoi.config import StationConfig
from aoi.recipe import find_recipe, load_recipe
from aoi.runner import MAX_INTERNAL_ERRORS, RunState, ShiftCounters, StationRunner
from aoi.types import ErrorKind, Frame, InspectionResult, Verdict
from plc.events import error_code_for
from plc.protocol import ErrorCode

pytestmark = pytest.mark.fault


class _BuggySource:
    """The real synthetic source, raising ``KeyError`` on the grabs numbered in ``fail_on``."""

    def __init__(self, inner: Any, fail_on: set[int]) -> None:
        self.inner, self.fail_on, self.grabs = inner, fail_on, 0

    def grab(self, timeout_s: float = 1.0) -> Frame:
        self.grabs += 1
        if self.grabs in self.fail_on:
            raise KeyError("no such board")
        frame: Frame = self.inner.grab(timeout_s)
        return frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _BuggyBackend:
    """The real backend, dividing by zero on the predictions numbered in ``fail_on``."""

    def __init__(self, inner: Any, fail_on: set[int]) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls in self.fail_on:
            return np.asarray(1 // 0)
        out: np.ndarray = self.inner.predict(batch)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _BuggyRig:
    """The runner's view of a rig (pipeline, source, close), with the bug put in."""

    def __init__(self, rig: Rig, *, source_fails: set[int], backend_fails: set[int]) -> None:
        self.pipeline = rig.pipeline
        self.pipeline.backend = _BuggyBackend(rig.pipeline.backend, backend_fails)  # type: ignore[assignment]
        self.source = _BuggySource(rig.source, source_fails)

    def close(self) -> None:
        """The real rig is closed by its fixture."""


@pytest.fixture
def rig() -> Iterator[Rig]:
    loaded = load_recipe(find_recipe("board-a-640"))
    made = Rig(loaded, StationConfig(), source_spec="synthetic", backend="onnxruntime", threads=1)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def thread_deaths() -> Iterator[list[threading.ExceptHookArgs]]:
    """Exceptions that ended a thread (what the runner must never let happen)."""
    seen: list[threading.ExceptHookArgs] = []
    old = threading.excepthook
    threading.excepthook = seen.append
    try:
        yield seen
    finally:
        threading.excepthook = old


def _run(rig: _BuggyRig, cycles: int) -> tuple[StationRunner, list[InspectionResult]]:
    results: list[InspectionResult] = []
    runner = StationRunner(rig, ShiftCounters(50.0), on_result=results.append)
    runner.start(cycles)
    assert runner.wait(120)
    return runner, results


def test_a_bug_in_one_board_is_that_board_s_error(
    rig: Rig, thread_deaths: list[threading.ExceptHookArgs], caplog: pytest.LogCaptureFixture
) -> None:
    runner, results = _run(_BuggyRig(rig, source_fails={4}, backend_fails={2}), 6)
    assert len(results) == 6
    kinds = [r.error_kind for r in results]
    assert kinds[1] is ErrorKind.INTERNAL and kinds[3] is ErrorKind.INTERNAL
    assert all(k is ErrorKind.NONE for i, k in enumerate(kinds) if i not in (1, 3))
    for bad in (results[1], results[3]):
        assert bad.verdict is Verdict.ERROR and not bad.defects
        assert "internal error" in bad.error and "log" in bad.error
        assert error_code_for(bad.error_kind) is ErrorCode.INSPECTION_FAILED
    assert "ZeroDivisionError" in results[1].error and "KeyError" in results[3].error
    assert runner.state is RunState.STOPPED and runner.fault == ""
    assert not thread_deaths
    # The traceback is in the log for whoever fixes the bug.
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_a_bug_in_every_board_stops_the_station_after_a_few(
    rig: Rig, thread_deaths: list[threading.ExceptHookArgs]
) -> None:
    bugged = _BuggyRig(rig, source_fails=set(range(1, 100)), backend_fails=set())
    runner, results = _run(bugged, 50)
    assert len(results) == MAX_INTERNAL_ERRORS
    assert all(r.verdict is Verdict.ERROR for r in results)
    assert runner.state is RunState.FAULT
    assert f"{MAX_INTERNAL_ERRORS} boards in a row" in runner.fault
    assert "KeyError" in runner.fault
    assert not thread_deaths


def test_a_bug_outside_the_board_is_a_fault_not_a_dead_thread(
    rig: Rig, thread_deaths: list[threading.ExceptHookArgs], tmp_path: Path
) -> None:
    told: list[bool] = []

    def broken_hook(result: InspectionResult) -> None:
        raise AttributeError("'NoneType' object has no attribute 'serial'")

    runner = StationRunner(rig, ShiftCounters(50.0), on_result=broken_hook, set_online=told.append)
    runner.start(5)
    assert runner.wait(120)
    assert runner.state is RunState.FAULT
    assert "internal error" in runner.fault and "AttributeError" in runner.fault
    assert told == [True, False]  # READY rose, and dropped when the cycle stopped
    assert not thread_deaths
