"""GenICamSource against the real Viky GenTL producer that ships with the genicam package.

Viky simulates three cameras (ids VikyTL_DEV_red/green/blue, serials 0/1/2, model Viky) that
free-run at AcquisitionFrameRate (20 Hz by default), in Mono8 or RGBa8, 100..800 px a side
(400x400 by default). It has no trigger, exposure, gain or offset nodes.
"""

from __future__ import annotations

import itertools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import genicam
import numpy as np
import pytest

from aoi.errors import CameraError, CameraTimeout, SourceError
from aoi.recipe import CameraSettings
from aoi.sources.base import ImageSource
from aoi.sources.genicam import GENTL_PATH_VAR, GenICamSource, find_cti_files, list_devices
from aoi.types import Frame

VIKY = Path(genicam.__file__).parent / "viky.cti"

pytestmark = [
    pytest.mark.skipif(
        not VIKY.is_file(), reason=f"the genicam package ships no Viky producer at {VIKY}"
    ),
    pytest.mark.integration,  # harvesters on the Viky GenTL producer
]

#: Viky at 100 Hz keeps the tests short.
FAST = {"AcquisitionFrameRate": 100.0}


def _viky(
    device: str = "0", nodes: dict[str, float | int | str | bool] | None = None, **settings: Any
) -> GenICamSource:
    """A source on one Viky camera (serial 0 unless told), running at 100 Hz."""
    return GenICamSource(
        cti_paths=[VIKY],
        device=device,
        settings=CameraSettings(nodes={**FAST, **(nodes or {})}, **settings),
        fetch_timeout_s=2.0,
    )


def test_list_devices_finds_the_viky_cameras() -> None:
    devices = list_devices([VIKY])
    assert len(devices) >= 1
    assert {d["model"] for d in devices} == {"Viky"}
    assert {"serial_number", "user_defined_name", "id", "model", "vendor"} <= set(devices[0])
    assert "VikyTL_DEV_red" in {d["id"] for d in devices}


def test_grab_mono_frames_of_the_roi_size() -> None:
    assert _viky().describe() == "Camera 0 (not open)"
    with _viky(pixel_format="Mono8", roi_width_px=320, roi_height_px=240) as cam:
        assert isinstance(cam, ImageSource)
        assert cam.describe().startswith("Camera Viky serial 0 (")  # model and serial, open
        assert cam.node_value("Width") == 320
        assert cam.node_value("Height") == 240
        assert cam.node_value("NoSuchNode") is None
        first = cam.grab()
        first_pixels = first.image.copy()
        frames = [first] + [cam.grab() for _ in range(7)]  # more grabs than driver buffers
    # The first frame owns its pixels: recycling the driver's buffer did not overwrite it.
    np.testing.assert_array_equal(first.image, first_pixels)
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.frame_id for f in frames] == list(range(8))
    assert all(f.image.shape == (240, 320) and f.image.dtype == np.uint8 for f in frames)
    assert all(a.available_ns < b.available_ns for a, b in itertools.pairwise(frames))
    # The ball bounces: frames taken at different times differ (no recycled buffer aliasing).
    assert not np.array_equal(frames[0].image, frames[-1].image)


def test_rgba_frames_come_out_bgr_in_the_device_colour() -> None:
    """The red Viky draws a red ball on white: BGR (0, 0, 255) where it is not white."""
    with _viky(device="VikyTL_DEV_red", pixel_format="RGBa8") as cam:
        frame = cam.grab()
    assert frame.image.shape == (400, 400, 3)
    ball = frame.image[(frame.image != 255).any(axis=2)]
    assert len(ball) > 0
    assert (ball == [0, 0, 255]).all()


def test_missing_nodes_and_refused_values_are_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="aoi.sources.genicam")
    with _viky(
        pixel_format="BayerRG8",  # Viky offers only RGBa8 and Mono8
        nodes={"NoSuchNode": 5, "Width": 5000, "BouncingBallSize": 30},
    ) as cam:
        frame = cam.grab()
        assert cam.node_value("BouncingBallSize") == 30
    text = "\n".join(cam.warnings)
    assert "NoSuchNode: the device has no such node; 5 not applied" in text
    assert "Width: the device refused 5000 (Value = 5000 must be equal or smaller than Max" in text
    assert "PixelFormat: the device refused 'BayerRG8'" in text
    assert "expected one of ['RGBa8', 'Mono8']" in text
    assert "ExposureTime: the device has no ExposureTime" in text
    assert "TriggerMode: the device has no such node; it free-runs" in text
    assert "BouncingBallSize" not in text
    assert frame.image.ndim == 2 or frame.image.shape[2] == 3  # frames still flow
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("NoSuchNode" in m for m in logged)


def test_unknown_device_lists_the_devices_found() -> None:
    with pytest.raises(CameraError) as info, _viky(device="no-such-serial"):
        pass
    message = str(info.value)
    assert "camera 'no-such-serial' not found" in message
    assert "Viky serial 0 (VikyTL_DEV_red)" in message
    assert "Viky serial 2 (VikyTL_DEV_blue)" in message


def test_an_ambiguous_selector_is_refused() -> None:
    with (
        pytest.raises(CameraError, match=r"'Viky' matches 3 devices by model"),
        _viky(device="Viky"),
    ):
        pass


def test_no_cti_anywhere_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(GENTL_PATH_VAR, str(tmp_path))
    with pytest.raises(CameraError, match=rf"no GenTL producer .*{GENTL_PATH_VAR}"):
        find_cti_files(None)
    with pytest.raises(CameraError, match=r"not found; expected an existing \.cti"):
        find_cti_files([tmp_path / "vendor.cti"])
    with pytest.raises(CameraError, match=r"no GenTL producer"), GenICamSource():
        pass


def test_cti_found_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENTL_PATH_VAR, f"/nonexistent{':'}{VIKY.parent}")
    assert find_cti_files(None) == [VIKY]


def _ticks_while(action: Callable[[], object]) -> int:
    """How often a thread sleeping 1 ms a tick got to run while ``action`` ran."""
    ticks = 0
    done = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        action()
    finally:
        done.set()
        ticker.join()
    return ticks


def test_grab_times_out_instead_of_hanging_and_other_threads_run() -> None:
    """With acquisition stopped no frame can come: CameraTimeout at the deadline, GIL shared."""
    elapsed_s: list[float] = []
    with _viky() as cam:

        def timed_out_grab() -> None:
            start = time.perf_counter()
            with pytest.raises(CameraTimeout, match=r"no frame within 0.5 s from camera Viky"):
                cam.grab(timeout_s=0.5)
            elapsed_s.append(time.perf_counter() - start)

        cam.stop_acquisition()
        # A thread holding the GIL only gives it up when it blocks (sleep, I/O) or when another
        # thread has asked for it for a switch interval. With that interval at 5 s, only a grab
        # that releases the GIL while it waits lets the ticker run much: one long try_fetch
        # gives it 1 to 8 ticks in 0.5 s, the 1 ms polls with a sleep between them over 200
        # (over 90 with the machine loaded 4x over). A count, not a rate: no speed is asserted.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(5.0)
        try:
            ticks = _ticks_while(timed_out_grab)
        finally:
            sys.setswitchinterval(interval)
        cam.start_acquisition()
        assert cam.grab().frame_id == 0
    # The grab waited out its timeout (a lower bound holds however loaded the machine is; the
    # epsilon is clock granularity) and then gave up (the upper bound only guards a hang).
    assert 0.5 - 0.005 <= elapsed_s[0] < 30, elapsed_s
    assert ticks >= 40, f"a waiting grab held the GIL: the ticker ran {ticks} times in 0.5 s"


def test_close_releases_everything_and_reopens() -> None:
    sigint = signal.getsignal(signal.SIGINT)
    source = _viky()
    with source as cam:
        assert signal.getsignal(signal.SIGINT) is sigint  # harvesters' handler was removed
        cam.grab()
        # A producer opens once per process: list_devices answers from the open source.
        devices = list_devices([VIKY])
        assert [d["in_use"] for d in devices].count("open in this process") == 1
        with pytest.raises(CameraError, match=r"already open in this process"), _viky():
            pass
    with pytest.raises(SourceError, match=r"not open; use the source in a 'with' block"):
        source.grab()
    with source as cam:
        assert cam.grab().frame_id == 0
    assert all(d["in_use"] == "" for d in list_devices([VIKY]))


def test_an_error_inside_the_block_still_closes() -> None:
    with pytest.raises(RuntimeError, match="boom"), _viky():
        raise RuntimeError("boom")
    with _viky() as cam:
        cam.grab()


def test_frames_are_copied_out_into_the_station_frame_memory() -> None:
    given: list[np.ndarray] = []

    class Recording:
        name = "recording"

        def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
            given.append(np.empty(shape, dtype))
            return given[-1]

    settings = CameraSettings(nodes=FAST, pixel_format="Mono8", roi_width_px=160, roi_height_px=120)
    with GenICamSource(cti_paths=[VIKY], device="0", settings=settings, memory=Recording()) as cam:
        frames = [cam.grab() for _ in range(6)]  # more grabs than driver buffers
        first = frames[0].image.copy()
    assert len(given) == 6 and all(f.image is g for f, g in zip(frames, given, strict=True))
    np.testing.assert_array_equal(frames[0].image, first)  # owns its pixels: not the buffer's
    assert not np.array_equal(frames[0].image, frames[-1].image)
