"""A GenICam camera that goes away mid-run, on the real Viky GenTL producer (issue 12).

A removed device looks to the source like an image acquirer destroyed under it (harvesters then
raises IndexError from ``try_fetch``, AttributeError from the acquirer's internals): the tests
destroy the real acquirer. While the device is "unplugged" the producer file is taken away (a
symlink removed), so reopen attempts really fail; putting it back is the device coming back.
The backoff runs on a test clock that only the source's waits (and the test) move forward, so
the schedule is checked exactly and no test sleeps through it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import genicam
import pytest

from aoi.errors import CameraLost
from aoi.inference.onnxruntime import OnnxRuntimeBackend
from aoi.pipeline import Pipeline, run_cycles
from aoi.recipe import CameraSettings, load_recipe
from aoi.runner import RunState
from aoi.sources.genicam import GenICamSource
from aoi.types import ErrorKind, InspectionResult, Verdict
from plc.events import PartResult
from plc.protocol import ErrorCode
from ui.logic.health import Level, alarms_from, camera_light

VIKY = Path(genicam.__file__).parent / "viky.cti"
RecipeFactory = Callable[..., Path]

pytestmark = [
    pytest.mark.skipif(
        not VIKY.is_file(), reason=f"the genicam package ships no Viky producer at {VIKY}"
    ),
    pytest.mark.integration,  # harvesters on the Viky GenTL producer
    pytest.mark.fault,
]

SETTINGS = CameraSettings(
    pixel_format="Mono8",
    roi_width_px=320,
    roi_height_px=240,
    nodes={"AcquisitionFrameRate": 100.0},
)


class Clock:
    """Test time: moves only when the source waits (``sleep``) or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Producer:
    """The Viky producer behind a symlink that a test can take away and put back."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        self.folder = folder
        self.link = folder / "viky.cti"
        self.plug()

    def plug(self) -> None:
        self.link.symlink_to(VIKY)

    def unplug(self) -> None:
        self.link.unlink()


def _source(producer: Producer, clock: Clock) -> GenICamSource:
    return GenICamSource(
        cti_paths=[producer.folder],
        device="0",
        settings=SETTINGS,
        fetch_timeout_s=2.0,
        clock=clock,
        sleep=clock.sleep,
    )


def _remove_device(cam: GenICamSource, producer: Producer) -> None:
    """The camera goes away: its acquirer is dead and the producer finds no device."""
    assert cam._acquirer is not None  # no public handle: the test plays the device's removal
    cam._acquirer.destroy()
    producer.unplug()


def test_a_removed_camera_is_lost_then_reopened_with_backoff(tmp_path: Path) -> None:
    clock = Clock()
    producer = Producer(tmp_path / "producer")
    with _source(producer, clock) as cam:
        assert cam.grab().frame_id == 0
        _remove_device(cam, producer)

        # The issue-12 trap: try_fetch on the destroyed acquirer raises IndexError.
        with pytest.raises(CameraLost, match=r"lost \(fetching a buffer failed: IndexError"):
            cam.grab()
        assert cam.lost
        assert cam.reconnect_delay_s == 0.5
        assert "lost, reconnecting" in cam.describe()
        with pytest.raises(CameraLost, match="reconnecting"):
            cam.node_value("Width")

        # An attempt due after the grab's timeout is not waited for: CameraLost at once.
        with pytest.raises(CameraLost, match=r"next attempt in 0\.5 s"):
            cam.grab(timeout_s=0.1)
        assert clock.sleeps == []

        # Each later grab waits for its attempt (never longer than its timeout), tries, fails,
        # and the wait doubles up to the cap.
        delays = []
        for _ in range(6):
            with pytest.raises(CameraLost, match=r"reconnect attempt \d+ failed: .*no \*\.cti"):
                cam.grab(timeout_s=20.0)
            delays.append(cam.reconnect_delay_s)
        assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
        assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
        assert cam.lost

        # The device is back: the next due attempt reopens it with the recipe's settings.
        producer.plug()
        with pytest.raises(CameraLost):  # not due yet within this grab's timeout
            cam.grab(timeout_s=1.0)
        frame = cam.grab(timeout_s=20.0)
        assert clock.sleeps[-1] == 10.0
        assert not cam.lost
        assert cam.reconnect_delay_s == 0
        assert frame.frame_id == 1  # ids go on counting across the reconnect
        assert frame.image.shape == (240, 320)
        assert cam.node_value("Width") == 320
        assert cam.node_value("AcquisitionFrameRate") == 100.0
        assert [cam.grab().frame_id for _ in range(3)] == [2, 3, 4]

        # A second loss, the way a Harvester reset (or update) leaves the acquirer obsolete,
        # starts the schedule from the first delay again.
        assert cam._harvester is not None
        cam._harvester.reset()
        with pytest.raises(CameraLost, match="IndexError"):
            cam.grab()
        assert cam.reconnect_delay_s == 0.5
        assert cam.grab(timeout_s=1.0).frame_id == 5  # still plugged: the first attempt works
    assert not cam.lost


def test_a_lost_camera_gives_error_verdicts_and_the_station_goes_on(
    make_recipe: RecipeFactory, tmp_path: Path
) -> None:
    clock = Clock()
    producer = Producer(tmp_path / "producer")
    results: list[InspectionResult] = []

    def on_result(result: InspectionResult) -> None:
        results.append(result)
        clock.now += 0.1  # the next part comes a little later
        if len(results) == 2:
            _remove_device(cam, producer)
        if len(results) == 4:
            producer.plug()

    with _source(producer, clock) as cam:
        golden = cam.grab().image
        loaded = load_recipe(make_recipe(name="viky", width=320, height=240, template=golden))
        profile = loaded.recipe.geometry.profile
        with OnnxRuntimeBackend(loaded.model_path, profile, threads=1) as backend:
            pipeline = Pipeline(loaded, backend)
            stats = run_cycles(pipeline, cam, cycles=6, on_result=on_result)

    # The loop did not end on the loss: every cycle got a result.
    assert stats.cycles == 6
    kinds = [r.error_kind for r in results]
    assert kinds[2:4] == [ErrorKind.CAMERA_LOST, ErrorKind.CAMERA_LOST], kinds
    lost = results[2:4]
    assert all(r.verdict is Verdict.ERROR and r.frame_id == -1 for r in lost)
    assert "IndexError" in lost[0].error
    assert "reconnect attempt 1 failed" in lost[1].error
    # Before the loss and after the reconnect, frames reached the cycle.
    for r in results[:2] + results[4:]:
        assert r.error_kind is not ErrorKind.CAMERA_LOST
        assert r.frame_id >= 0
        assert "acquire" in r.stages_ms
    # The waits for the two attempts, less the 0.1 s each part took.
    assert clock.sleeps == pytest.approx([0.4, 0.9])

    # The PLC gets its own code, the camera light and its alarm say it in words.
    assert PartResult.from_inspection(lost[0]).error_code is ErrorCode.CAMERA_LOST
    light = camera_light("Camera Viky serial 0", last=lost[1])
    assert light.level is Level.FAULT
    assert light.summary == "Camera lost: reconnecting"
    assert "reconnects by itself" in light.action
    alarms = alarms_from([light], state=RunState.RUNNING)
    assert [(a.source, a.title) for a in alarms] == [("Camera", "Camera lost: reconnecting")]
    assert camera_light("Camera Viky serial 0", last=results[-1]).level is Level.OK
