"""The inspection cycle: acquire -> register -> preprocess -> infer -> postprocess -> decide.

This module owns the critical path. Every stage is timed every cycle; the budget clock starts
when the frame became available to the host (``Frame.available_ns``) and stops when the verdict
has been handed to the critical-path sinks (the PLC). Results then leave as typed
:class:`InspectionResult` objects through the :class:`EventBus`, off the critical path.

A known failure of any stage (:class:`AoiError`) is an ERROR verdict with its kind and message;
the loop goes on with the next board. Never an OK for a board the station could not inspect."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np

from aoi.errors import (
    UNEXPECTED_ERRORS,
    AoiError,
    CameraLost,
    CameraTimeout,
    FrameError,
    InferenceError,
    ModelError,
    RecordNotDurable,
    RegistrationError,
    SourceError,
    SourceExhausted,
)
from aoi.events import EventBus
from aoi.inference.base import InferenceBackend
from aoi.inference.warp import device_affine
from aoi.pixels import to_mono8
from aoi.recipe import LoadedRecipe
from aoi.recipe.template import load_template
from aoi.sources.base import ImageSource
from aoi.stats import RunStats
from aoi.types import Defects, ErrorKind, Frame, InspectionResult, Registration, Trigger, Verdict
from aoi.vision.multiscale import ScaleReader
from aoi.vision.postprocess import Postprocessor
from aoi.vision.preprocess import InputBuilder
from aoi.vision.registration import Registrar, align, template_onto
from aoi.vision.verdict import Candidates, VerdictRules, decide, split

log = logging.getLogger(__name__)


class VerdictSink(Protocol):
    """Something on the critical path that must receive the verdict before the cycle ends."""

    def publish(self, result: InspectionResult) -> None: ...


class TriggerSource(Protocol):
    """What announces the next part (the PLC): the loop waits for it before grabbing."""

    def wait_trigger(self, timeout_s: float) -> Trigger | None:
        """The next trigger, or None when none came within ``timeout_s``."""


class InspectionIds:
    """Numbers inspections that no PLC trigger numbered; thread-safe, shared by every pipeline a
    station builds (a recipe change must not start again at 1), and started after the last id
    the station gave (``aoi.storage.Storage.last_inspection_id``), so ids stay unique."""

    def __init__(self, last: int = 0) -> None:
        self._lock = threading.Lock()
        self._last = last

    @property
    def last(self) -> int:
        """The last id given (the one the station started after, before the first)."""
        return self._last

    def next(self) -> int:
        with self._lock:
            self._last = self._last % 0xFFFFFFFF + 1  # 32 bits, as the PLC's register
            return self._last


def _ms(t0: int, t1: int) -> float:
    return (t1 - t0) / 1e6


def error_kind_of(err: AoiError) -> ErrorKind:
    """The kind of ERROR a known failure gives (most specific class first)."""
    if isinstance(err, CameraLost):
        return ErrorKind.CAMERA_LOST
    if isinstance(err, CameraTimeout):
        return ErrorKind.CAMERA_TIMEOUT
    if isinstance(err, SourceError | FrameError):
        return ErrorKind.BAD_FRAME
    if isinstance(err, RegistrationError):
        return ErrorKind.REGISTRATION
    if isinstance(err, InferenceError | ModelError):
        return ErrorKind.INFERENCE
    return ErrorKind.OTHER


#: Unexpected failures of a cycle: the named Python errors and OpenCV's own (``cv2.error``).
UNEXPECTED = (*UNEXPECTED_ERRORS, cv2.error)


def internal_message(err: BaseException) -> str:
    """What an ERROR result says about a bug: the class only, the traceback goes to the log."""
    return f"internal error in the station ({type(err).__name__}); the details are in its log"


def _message(err: Exception) -> str:
    # An ERROR result must say why: an exception raised without a message still has its class.
    return str(err) or type(err).__name__


@dataclass
class Staged:
    """A board between :meth:`Pipeline.prepare` and :meth:`Pipeline.complete` (owned by one
    thread at a time, hence not frozen); ``error`` is a failure of the first half."""

    frame: Frame
    started_ns: int
    stages: dict[str, float]
    aligned: np.ndarray | None = None
    template: np.ndarray | None = None
    reg: Registration | None = None
    seen: tuple[int, int, int, int] | None = None
    error: BaseException | None = None
    #: With the warp on the device: ``aligned`` is the unwarped frame and this its [1, 2, 3] map.
    affine: np.ndarray | None = None


class Pipeline:
    """Inspects frames of one recipe with one inference backend."""

    def __init__(
        self,
        loaded: LoadedRecipe,
        backend: InferenceBackend,
        *,
        template: np.ndarray | None = None,
        sinks: Sequence[VerdictSink] = (),
        events: EventBus | None = None,
        ids: InspectionIds | None = None,
    ) -> None:
        recipe = loaded.recipe
        self.loaded = loaded
        self.recipe = recipe
        self.backend = backend
        g = recipe.geometry
        if template is None:
            template = load_template(
                loaded.template_path, g.frame_width_px, g.frame_height_px, str(loaded.path)
            )
        self.template = template
        self.registrar = Registrar(template, recipe.registration)
        self.inputs = InputBuilder(g, template)
        self.post = Postprocessor(recipe)
        # [model] scales and ensemble: the further network runs of a board
        self.scales = ScaleReader(recipe, self.post, getattr(backend, "members", ()))
        self.rules = VerdictRules.of(recipe)
        self.sinks = list(sinks)
        self.events = events
        self.ids = ids or InspectionIds()
        # Full-frame recipes register (steps, warp) on the backend's device where it can; tiled
        # ones, and further readings (resampled on the host), need the registered frame on the CPU.
        # The residual is then not measured (-1).
        self.device_warp = (
            getattr(backend, "warps_on_device", False)
            and self.inputs.whole_frame
            and not self.scales.readings
        )
        if self.device_warp and hasattr(backend, "registration_steps"):
            self.registrar.use_device(backend.registration_steps)
        # ... and hand it the frame as it is (aoi/inference/frame_input.py) where it takes one.
        self.frame_input = self.device_warp and getattr(backend, "takes_frames", False)

    def warm_up(self) -> None:
        """Run the network once at the recipe's shape so the first board is not slow."""
        for batch, tiles in self.inputs.for_network(self.template, frames=self.frame_input)[:1]:
            self.backend.predict(batch)
            self.scales.predict(self.backend, [(batch, tiles)])  # and at each extra scale

    def _finish(
        self,
        frame: Frame | None,
        started_ns: int,
        stages: dict[str, float],
        verdict: Verdict,
        found: Candidates,
        reg: Registration | None,
        trigger: Trigger | None,
        *,
        reason: str = "",
        error: str = "",
        error_kind: ErrorKind = ErrorKind.NONE,
        seen: tuple[int, int, int, int] | None = None,
    ) -> InspectionResult:
        # A PLC-triggered part keeps the id the PLC link gave it; otherwise the pipeline counts.
        plc_id = trigger.inspection_id if trigger is not None else 0
        # What the recipe could have found: truth outside masks and inside ``seen`` (prepare's).
        truth = frame.truth if frame is not None else None
        result = InspectionResult(
            inspection_id=plc_id or self.ids.next(),
            frame_id=frame.frame_id if frame else -1,
            frame_name=frame.name if frame else "",
            recipe_name=self.recipe.name,
            recipe_hash=self.loaded.content_hash,
            model_hash=self.backend.model_hash,
            backend=self.backend.name,
            verdict=verdict,
            defects=found.defects,
            review_defects=found.review,
            stages_ms=stages,
            cycle_ms=_ms(started_ns, time.perf_counter_ns()),
            over_budget=False,
            registration=reg,
            error=error,
            error_kind=error_kind,
            verdict_reason=reason,
            truth=self.post.visible_truth(truth, seen) if truth is not None else None,
            timestamp_utc=time.time(),
            part_sequence=trigger.part_sequence if trigger else 0,
            serial=trigger.serial if trigger else "",
            frame=frame,
        )
        for sink in self.sinks:
            try:
                sink.publish(result)
            except RecordNotDurable as err:
                # The journal comes first: a verdict it could not keep must not reach the PLC.
                log.warning("inspection %d answered ERROR: %s", result.inspection_id, err)
                none = Defects.empty()
                result = replace(
                    result,
                    verdict=Verdict.ERROR,
                    error=_message(err),
                    error_kind=ErrorKind.STORAGE,
                    verdict_reason="",
                    defects=none,
                    review_defects=none,
                )
        cycle_ms = _ms(started_ns, time.perf_counter_ns())
        # The result is frozen: the final cycle time (with the sinks) goes into a copy.
        result = replace(
            result, cycle_ms=cycle_ms, over_budget=cycle_ms > self.recipe.cycle_budget_ms
        )
        if self.events is not None:
            self.events.publish(result)
        return result

    def error_result(
        self,
        kind: ErrorKind,
        message: str,
        frame: Frame | None = None,
        trigger: Trigger | None = None,
    ) -> InspectionResult:
        """An ERROR verdict for a cycle that produced no usable frame (camera timeout, bad file)."""
        now = time.perf_counter_ns()
        empty = Candidates.none()
        return self._finish(
            frame, now, {}, Verdict.ERROR, empty, None, trigger, error=message, error_kind=kind
        )

    def inspect(self, frame: Frame, trigger: Trigger | None = None) -> InspectionResult:
        """Run one board through the critical path; known failures give an ERROR verdict."""
        return self.complete(self.prepare(frame), trigger)

    def prepare(self, frame: Frame) -> Staged:
        """The board's first half (acquire, register): touches nothing :meth:`complete` uses,
        so a pipelined loop (:mod:`aoi.pipelined`) runs it for board N+1 during board N."""
        staged = Staged(frame, frame.available_ns, {})
        t = time.perf_counter_ns()
        staged.stages["acquire"] = _ms(staged.started_ns, t)
        try:
            image = to_mono8(frame.image)
            self.inputs.check_frame(image)
            if frame.template is not None:  # a pair (DeepPCB): its template moves onto the test
                pair = template_onto(to_mono8(frame.template), image, self.recipe.registration)
                staged.aligned, (staged.template, staged.reg) = image, pair
            elif self.device_warp:
                staged.aligned, staged.reg = image, self.registrar.register(image)
                hw = image.shape if self.frame_input else self.inputs.input_hw
                staged.affine = device_affine(staged.reg.transform, *hw)[None]
            else:
                staged.aligned, staged.reg = align(self.registrar, image)
            if frame.template is None:  # a pair's test image is seen whole
                staged.seen = self.registrar.seen(staged.reg, image.shape[1], image.shape[0])
            staged.stages["register"] = _ms(t, time.perf_counter_ns())  # only a stage done
        except (AoiError, *UNEXPECTED) as err:  # complete() answers it, in order
            staged.error = err
        return staged

    def complete(self, staged: Staged, trigger: Trigger | None = None) -> InspectionResult:
        """The board's second half (preprocess, infer, postprocess, decide) and its result."""
        frame, stages, reg, t = staged.frame, staged.stages, staged.reg, time.perf_counter_ns()
        try:
            if staged.error is not None:
                raise staged.error
            batches = self.inputs.for_network(
                staged.aligned, staged.template, frames=self.frame_input
            )
            t, t0 = time.perf_counter_ns(), t
            stages["preprocess"] = _ms(t0, t)

            extra = () if staged.affine is None else (staged.affine,)
            outputs = [(self.backend.predict(batch, *extra), tiles) for batch, tiles in batches]
            scaled = self.scales.predict(self.backend, batches)
            t, t0 = time.perf_counter_ns(), t
            stages["infer"] = _ms(t0, t)

            hw = (self.inputs.input_h, self.inputs.input_w)
            candidates = self.scales.candidates(outputs, scaled, hw, staged.seen)
            t, t0 = time.perf_counter_ns(), t
            stages["postprocess"] = _ms(t0, t)

            found = split(self.rules, candidates)
            decision = decide(self.rules, found)
            stages["decide"] = _ms(t, time.perf_counter_ns())
        except AoiError as err:
            log.warning("inspection of %s failed: %s", frame.name or frame.frame_id, err)
            return self._finish(
                frame, staged.started_ns, stages, Verdict.ERROR, Candidates.none(), reg, trigger,
                error=_message(err), error_kind=error_kind_of(err), seen=staged.seen,
            )  # fmt: skip
        except UNEXPECTED as err:
            log.exception(
                "inspection of %s raised an unexpected error", frame.name or frame.frame_id
            )
            return self._finish(
                frame, staged.started_ns, stages, Verdict.ERROR, Candidates.none(), reg, trigger,
                error=internal_message(err), error_kind=ErrorKind.INTERNAL, seen=staged.seen,
            )  # fmt: skip
        return self._finish(
            frame, staged.started_ns, stages, decision.verdict, found, reg, trigger,
            reason=decision.reason, seen=staged.seen,
        )  # fmt: skip


def grab_frame(source: ImageSource, timeout_s: float) -> Frame | tuple[ErrorKind, str]:
    """The source's next frame, or the kind and message of the ERROR a failed grab answers
    (a camera timeout, an unreadable file, a bug); :class:`SourceExhausted` passes through."""
    try:
        return source.grab(timeout_s)
    except SourceExhausted:
        raise
    except (SourceError, FrameError) as err:
        return error_kind_of(err), _message(err)
    except ValueError as err:  # a Frame that refused what the source handed it
        return ErrorKind.BAD_FRAME, _message(err)
    except UNEXPECTED as err:
        log.exception("the source raised an unexpected error")
        return ErrorKind.INTERNAL, internal_message(err)


def run_cycles(
    pipeline: Pipeline,
    source: ImageSource,
    *,
    cycles: int | None,
    grab_timeout_s: float = 2.0,
    stop: threading.Event | None = None,
    on_result: Callable[[InspectionResult], None] | None = None,
    triggers: TriggerSource | None = None,
    trigger_poll_s: float = 0.1,
) -> RunStats:
    """Grab and inspect until ``cycles`` are done, the source is exhausted, or ``stop`` is set.

    With ``triggers`` (the PLC) each cycle first waits for a part; without, boards go back to
    back. A failed grab is that cycle's ERROR verdict (:func:`grab_frame`): a triggered line
    expects an answer for every part, and the loop itself only ends on purpose."""
    stats = RunStats(budget_ms=pipeline.recipe.cycle_budget_ms)
    done = 0
    while cycles is None or done < cycles:
        if stop is not None and stop.is_set():
            break
        trigger = None
        if triggers is not None:
            trigger = triggers.wait_trigger(trigger_poll_s)
            if trigger is None:
                continue
        try:
            got = grab_frame(source, grab_timeout_s)
        except SourceExhausted:
            break
        if isinstance(got, Frame):
            result = pipeline.inspect(got, trigger)
        else:
            result = pipeline.error_result(*got, trigger=trigger)
        stats.add(result)
        if on_result is not None:
            on_result(result)
        done += 1
    return stats
