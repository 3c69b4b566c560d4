"""Acquire frames from a GenICam camera through its vendor's GenTL producer, with harvesters.

Traps handled here (each cost someone a day; the producer-once and import traps are handled in
:mod:`aoi.sources.genicam.devices`):

- ``fetch(timeout=...)`` holds the GIL while it waits (genicam/harvesters#508), and so does
  ``try_fetch`` with a long timeout. :meth:`GenICamSource.grab` polls with 1 ms ``try_fetch``
  calls and yields the GIL between them, so the other threads of the station keep running.
- A fetched buffer is recycled when its ``with`` block ends (#450): the image is copied and
  converted inside the block.
- ``fetch``/``try_fetch`` with ``timeout=0`` wait forever; never pass 0.
- ``ImageAcquirer`` installs a SIGINT handler that swallows Ctrl+C; the previous one is restored.
- A removed device (or an acquirer destroyed under the source) shows as an IndexError from
  ``try_fetch``, an AttributeError from the acquirer's internals or a GenTL handle error
  (:data:`~aoi.sources.genicam.reconnect.LOST_ERRORS`). The grab raises
  :class:`~aoi.errors.CameraLost`, and later grabs reopen the device on a backoff schedule. An
  acquirer cannot be revived and a Harvester's ``update`` makes every acquirer obsolete (#174,
  #371, #202), so reopening tears down the acquirer *and* the Harvester (tolerating their
  failures: #246) and builds both anew; the producer stays claimed by this source meanwhile.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import numpy as np

from aoi.errors import CameraError, CameraLost, CameraTimeout, SourceError
from aoi.framemem import HEAP, FrameMemory
from aoi.recipe import CameraSettings
from aoi.sources.genicam.devices import (
    Harvester,
    ImageAcquirer,
    claim_producers,
    describe_device,
    describe_info,
    find_cti_files,
    open_harvester,
    release_producers,
    select_device,
)
from aoi.sources.genicam.nodes import GENICAM_ERRORS, apply_settings, read_node, short_error
from aoi.sources.genicam.pixelformat import to_station_image
from aoi.sources.genicam.reconnect import LOST_ERRORS, RECONNECT_FIRST_S, RECONNECT_MAX_S, Backoff
from aoi.types import Frame

logger = logging.getLogger(__name__)

#: One ``try_fetch`` waits this long while holding the GIL.
POLL_TIMEOUT_S = 0.001
#: Pause between polls, where the GIL is released.
POLL_PAUSE_S = 0.0002


class GenICamSource:
    """An :class:`aoi.sources.base.ImageSource` reading a GenICam camera through harvesters."""

    name = "genicam"

    def __init__(
        self,
        *,
        cti_paths: Sequence[Path] | None = None,
        device: str | None = None,
        settings: CameraSettings | None = None,
        fetch_timeout_s: float = 1.0,
        reconnect_first_s: float = RECONNECT_FIRST_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        memory: FrameMemory = HEAP,
    ) -> None:
        """``device`` picks the camera by serial, user-defined name, id or model (None: first).

        A lost camera is reopened ``reconnect_first_s`` after the loss, then at doubling
        intervals up to ``reconnect_max_s``; ``clock`` and ``sleep`` time those attempts.
        A frame needing no conversion is copied out of the camera's buffer into ``memory``."""
        self._memory = memory
        self._cti_paths = cti_paths
        self._wanted = device
        self.settings = settings or CameraSettings()
        self.fetch_timeout_s = fetch_timeout_s
        #: Settings the device lacks or refused, one readable line each (for the GUI and doctor).
        self.warnings: list[str] = []
        #: Every device the producers listed when the source opened, and the one it holds.
        self.devices: list[dict[str, str]] = []
        self.device: dict[str, str] = {}
        self.cti_files: list[Path] = []
        self._harvester: Harvester | None = None
        self._stack = ExitStack()
        self._acquirer: ImageAcquirer | None = None
        self._trigger = "free_run"  # the trigger actually in effect on the device
        self._next_frame_id = 0
        self._backoff = Backoff(reconnect_first_s, reconnect_max_s, clock)
        self._sleep = sleep

    @property
    def lost(self) -> bool:
        """True while the camera is gone and the source tries to reopen it."""
        return self._backoff.lost

    @property
    def reconnect_delay_s(self) -> float:
        """The wait between the last and the next reopen attempt (0 while the camera is there)."""
        return self._backoff.delay_s

    @property
    def label(self) -> str:
        """The device as messages name it."""
        return describe_device(self.device) if self.device else f"{self._wanted or 'first camera'}"

    def describe(self) -> str:
        """What the camera light says: the camera's model and serial (or the one asked for)."""
        if self.device and self.lost:
            return f"Camera {describe_device(self.device)} (lost, reconnecting)"
        if self.device:
            return f"Camera {describe_device(self.device)}"
        return f"Camera {self._wanted} (not open)" if self._wanted else "First camera (not open)"

    @contextmanager
    def _call(self, operation: str) -> Iterator[None]:
        """Turn a genicam exception into a CameraError naming the device and the operation."""
        try:
            yield
        except GENICAM_ERRORS as err:
            msg = f"camera {self.label}: {operation} failed: {short_error(err)}"
            raise CameraError(msg) from err

    # --- opening and closing -----------------------------------------------------------------

    def __enter__(self) -> GenICamSource:
        ctis = find_cti_files(self._cti_paths)
        self.cti_files = claim_producers(self, ctis)
        self._next_frame_id = 0
        self._backoff.recovered()
        try:
            self._open_device(ctis, self._wanted)
        except BaseException:
            self._close(pending=True)
            raise
        logger.info("camera %s open (trigger %s)", self.label, self._trigger)
        return self

    def _open_device(self, ctis: Sequence[Path], wanted: str | None) -> None:
        """A new Harvester and acquirer on the device ``wanted``, configured and streaming."""
        self.warnings = []
        self._stack = ExitStack()
        self._harvester = self._stack.enter_context(open_harvester(ctis))
        infos = self._harvester.device_info_list
        self.devices = [{**describe_info(i), "in_use": ""} for i in infos]
        index = select_device(self.devices, wanted, ctis)
        self.devices[index]["in_use"] = "open in this process"
        self.device = self.devices[index]
        self._acquirer = ia = self._create_acquirer(index)
        self._configure(self.settings)
        with self._call("starting acquisition"):
            ia.start()

    def _create_acquirer(self, index: int) -> ImageAcquirer:
        assert self._harvester is not None
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT) if in_main else None
        try:
            with self._call("opening the device (is another program using it?)"):
                return self._harvester.create(index)
        finally:
            if previous is not None:  # harvesters' handler would swallow Ctrl+C
                signal.signal(signal.SIGINT, previous)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(pending=exc is not None)

    def _close(self, *, pending: bool) -> None:
        """Stop, destroy and reset everything held; failures are logged, and raised if none is."""
        release_producers(self)
        self._backoff.recovered()
        failures = self._teardown()
        if failures and not pending:
            msg = f"camera {self.label}: closing failed: {'; '.join(failures)}"
            raise CameraError(msg)

    def _teardown(self) -> list[str]:
        """Stop and destroy the acquirer and reset the Harvester; what failed, one line each."""
        failures: list[str] = []
        ia, self._acquirer = self._acquirer, None
        try:
            if ia is not None:
                self._cleanup("stop acquisition", ia.stop, failures)
                self._cleanup("destroy the image acquirer", ia.destroy, failures)
        finally:
            self._harvester = None
            self._cleanup("reset the Harvester", self._stack.close, failures)
        return failures

    def _cleanup(self, step: str, action: Any, failures: list[str]) -> None:
        try:
            action()
        except (*GENICAM_ERRORS, *LOST_ERRORS, CameraError) as err:
            logger.error("camera %s: %s failed while closing", self.label, step, exc_info=True)
            failures.append(f"{step}: {short_error(err)}")

    # --- settings ----------------------------------------------------------------------------

    def _configure(self, settings: CameraSettings) -> None:
        assert self._acquirer is not None
        node_map = self._acquirer.remote_device.node_map
        problems, self._trigger = apply_settings(node_map, settings)
        for problem in problems:
            logger.warning("camera %s: %s", self.label, problem)
        self.warnings.extend(problems)

    def start_acquisition(self) -> None:
        """Start streaming (the source does this on opening)."""
        ia = self._require_open()
        with self._device_call("starting acquisition"):
            ia.start()

    def stop_acquisition(self) -> None:
        """Stop streaming; a grab then times out until :meth:`start_acquisition`."""
        ia = self._require_open()
        with self._device_call("stopping acquisition"):
            ia.stop()

    def node_value(self, name: str) -> object:
        """The current value of a node of the camera, or None if it has no readable such node."""
        ia = self._require_open()
        with self._device_call(f"reading {name}"):
            return read_node(ia.remote_device.node_map, name)

    # --- losing and reopening the device ----------------------------------------------------

    @contextmanager
    def _device_call(self, operation: str) -> Iterator[None]:
        """Like :meth:`_call`, and a sign that the device is gone becomes :class:`CameraLost`."""
        try:
            yield
        except LOST_ERRORS as err:  # before GENICAM_ERRORS: the GenTL ones are among them
            self._lose(f"{operation} failed: {type(err).__name__}: {short_error(err)}", err)
        except GENICAM_ERRORS as err:
            msg = f"camera {self.label}: {operation} failed: {short_error(err)}"
            raise CameraError(msg) from err

    def _lose(self, why: str, err: BaseException) -> NoReturn:
        """Drop the dead acquirer and Harvester, schedule a reopen, raise CameraLost."""
        logger.error("camera %s lost (%s); reconnecting", self.label, why)
        for failure in self._teardown():  # a removed device fails its teardown too (#246)
            logger.warning("camera %s: after the loss, %s", self.label, failure)
        self._backoff.lose()
        msg = (
            f"camera {self.label} lost ({why}); reconnecting, next attempt in "
            f"{self._backoff.wait_s():.1f} s"
        )
        raise CameraLost(msg) from err

    def _reconnect(self, timeout_s: float) -> float:
        """Reopen the lost device once its attempt is due; the time left of ``timeout_s``.

        An attempt due after ``timeout_s`` is not waited for: CameraLost at once. One due
        sooner is waited for, so a free-running loop does not spin on a lost camera.
        """
        wait = self._backoff.wait_s()
        if wait > timeout_s:
            msg = f"camera {self.label} lost; reconnecting, next attempt in {wait:.1f} s"
            raise CameraLost(msg)
        if wait > 0:
            self._sleep(wait)
        # The same device again: by its serial when it has one, else as asked for.
        wanted = self.device.get("serial_number") or self._wanted
        try:
            self._open_device(find_cti_files(self._cti_paths), wanted)
        except (CameraError, *GENICAM_ERRORS) as err:
            self._teardown()
            self._backoff.failed()
            msg = (
                f"camera {self.label} lost; reconnect attempt {self._backoff.attempts} "
                f"failed: {err}; next attempt in {self._backoff.delay_s:.1f} s"
            )
            raise CameraLost(msg) from err
        logger.warning(
            "camera %s reopened after %d failed attempt(s)", self.label, self._backoff.attempts
        )
        self._backoff.recovered()
        return max(timeout_s - wait, POLL_TIMEOUT_S)

    # --- grabbing ----------------------------------------------------------------------------

    def _require_open(self) -> ImageAcquirer:
        if self._acquirer is None and self.lost:
            msg = f"camera {self.label} lost; reconnecting on the next grab"
            raise CameraLost(msg)
        if self._acquirer is None:
            msg = f"camera {self.label} is not open; use the source in a 'with' block"
            raise SourceError(msg)
        return self._acquirer

    def _poll(self, ia: ImageAcquirer) -> Any:
        """One short ``try_fetch``: a Buffer, or None."""
        with self._device_call("fetching a buffer"):
            got = ia.try_fetch(timeout=POLL_TIMEOUT_S)
            if isinstance(got, list):  # one per data stream: keep the first, give back the rest
                for extra in got[1:]:
                    if extra is not None:
                        extra.queue()
                got = got[0] if got else None
        return got

    def _discard_stale(self, ia: ImageAcquirer) -> None:
        """Drop frames queued before this grab (a free-running camera, or a late trigger)."""
        for _ in range(ia.num_buffers + 1):
            stale = self._poll(ia)
            if stale is None:
                return
            with self._device_call("returning a stale buffer"):
                stale.queue()
            logger.debug("camera %s: discarded a frame queued before the grab", self.label)

    def grab(self, timeout_s: float | None = None) -> Frame:
        """The next frame taken after this call, copied out of the driver's buffer.

        With a software trigger the camera is triggered first; free-running, older queued frames
        are dropped; with a hardware trigger, queued frames are delivered in order. Raises
        :class:`CameraTimeout` when none arrives within ``timeout_s`` (default: the source's
        ``fetch_timeout_s``), :class:`CameraLost` when the device is gone (later grabs reopen it,
        see :meth:`_reconnect`) and :class:`CameraError` when the camera fails.
        """
        timeout_s = self.fetch_timeout_s if timeout_s is None else timeout_s
        if self._backoff.lost:
            timeout_s = self._reconnect(timeout_s)
        ia = self._require_open()
        if self._trigger != "hardware":
            self._discard_stale(ia)
        if self._trigger == "software":
            with self._device_call("executing TriggerSoftware"):
                ia.remote_device.node_map.TriggerSoftware.execute()
        deadline = time.perf_counter() + max(timeout_s, POLL_TIMEOUT_S)
        while (buffer := self._poll(ia)) is None:
            if time.perf_counter() >= deadline:
                msg = (
                    f"no frame within {timeout_s:g} s from camera {self.label} "
                    f"(trigger {self._trigger}); expected one per grab"
                )
                raise CameraTimeout(msg)
            time.sleep(POLL_PAUSE_S)  # releases the GIL that try_fetch holds
        available_ns = time.perf_counter_ns()
        with self._call("reading the buffer"), buffer:  # copy out before it is requeued (#450)
            image = self._copy_image(buffer)
        frame_id = self._next_frame_id
        try:
            frame = Frame(
                image=image,
                frame_id=frame_id,
                available_ns=available_ns,
                source=self.name,
                name=f"{self.name}-{frame_id:06d}",
            )
        except (ValueError, TypeError) as err:
            msg = f"camera {self.label}: frame {frame_id} is not usable: {err}"
            raise CameraError(msg) from err
        self._next_frame_id += 1
        return frame

    def _copy_image(self, buffer: Any) -> np.ndarray:
        """The first image component, converted and owning its memory (the buffer is reused)."""
        payload = buffer.payload
        components = [c for c in (payload.components if payload else []) if c is not None]
        component = next((c for c in components if c.data is not None), None)
        if component is None:
            msg = (
                f"camera {self.label}: the buffer holds no image component (payload type "
                f"{buffer.payload_type}); expected a 2D image"
            )
            raise CameraError(msg)
        data = component.data
        try:
            image = to_station_image(
                data, str(component.data_format), int(component.width), int(component.height)
            )
        except SourceError as err:
            msg = f"camera {self.label}: {err}"
            raise CameraError(msg) from err
        if not np.may_share_memory(image, data):  # converted: a new array already
            return image
        out = self._memory.empty(image.shape, image.dtype)  # a view of the driver's buffer
        np.copyto(out, image)
        return out
