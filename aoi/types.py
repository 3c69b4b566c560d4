"""Typed objects that flow through the inspection cycle.

Each is a frozen dataclass that checks itself once, at construction, so no stage downstream has to
re-check shapes or ranges. Units are in the names (``_px``, ``_ms``, ``_ns``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

# The detection type has its own module (this one would pass 400 lines); its names are
# importable from here too.
from aoi.defects import DEFECT_CLASSES, Defect, Defects, GroundTruth, LabelledBoxes

__all__ = [
    "DEFECT_CLASSES",
    "STAGES",
    "BackendName",
    "Defect",
    "Defects",
    "ErrorKind",
    "Frame",
    "GroundTruth",
    "InspectionResult",
    "LabelledBoxes",
    "Registration",
    "Trigger",
    "Verdict",
]


class BackendName(enum.StrEnum):
    """An inference backend a station may ask for (station config, ``--backend``, the factory).

    These are requests, not reports: ``auto`` is a policy, not a backend, and a created backend
    names itself in more detail (``InferenceBackend.name``: ``tensorrt-int8``,
    ``onnxruntime-cpu``), which is what summaries and the database record.
    """

    AUTO = "auto"
    #: ONNX Runtime on the CPU (the numerical reference).
    ONNXRUNTIME = "onnxruntime"
    ONNXRUNTIME_CUDA = "onnxruntime-cuda"
    TENSORRT = "tensorrt"

    @classmethod
    def choices(cls) -> list[str]:
        """The names as plain strings, for ``argparse``'s ``choices=`` and messages."""
        return [member.value for member in cls]


class Verdict(enum.IntEnum):
    """Verdict of one inspection; the values are the PLC register codes (0 means none yet)."""

    OK = 1
    NG = 2
    REVIEW = 3
    ERROR = 4


class ErrorKind(enum.StrEnum):
    """Why a board got an ERROR verdict (``NONE`` for every other verdict).

    What the PLC's error code, the GUI's health lights and the statistics switch on; the result's
    ``error`` text says the details in words. The values are what the database stores.
    """

    NONE = "none"
    #: No frame arrived within the fetch timeout (:class:`aoi.errors.CameraTimeout`).
    CAMERA_TIMEOUT = "camera_timeout"
    #: The camera went away mid-run; the source reopens it (:class:`aoi.errors.CameraLost`).
    CAMERA_LOST = "camera_lost"
    #: The source failed or delivered an unusable frame (size, type, unreadable file).
    BAD_FRAME = "bad_frame"
    #: The board could not be aligned to the golden template.
    REGISTRATION = "registration"
    #: The model or the inference backend failed on the board.
    INFERENCE = "inference"
    #: The defect log could not record the verdict (its journal's disk is full or failing), so
    #: the line is not told a verdict that would not survive a restart.
    STORAGE = "storage"
    #: Another known failure of a stage (an :class:`aoi.errors.AoiError` of no kind above).
    OTHER = "other"
    #: An unexpected exception inside the station (a bug, or a library failing in a way the
    #: station does not know); the traceback is in the log.
    INTERNAL = "internal"


@dataclass(frozen=True)
class Frame:
    """One image from a source, as the host received it.

    ``image`` is uint8 or uint16, either ``HxW`` (mono) or ``HxWx3`` (BGR). ``available_ns`` is the
    ``time.perf_counter_ns()`` at which the frame became available to the host (end of transfer):
    the cycle's budget clock starts there. ``template`` overrides the recipe's golden template for
    this frame (DeepPCB pairs carry their own); ``truth`` is set when the source knows the defects.
    """

    image: np.ndarray
    frame_id: int
    available_ns: int
    source: str
    name: str = ""
    template: np.ndarray | None = None
    truth: GroundTruth | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray):
            msg = f"Frame.image must be a numpy array, got {type(img).__name__}"
            raise TypeError(msg)
        if img.dtype not in (np.uint8, np.uint16):
            msg = f"Frame.image must be uint8 or uint16, got {img.dtype}"
            raise ValueError(msg)
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
            msg = f"Frame.image must be HxW or HxWx3, got shape {img.shape}"
            raise ValueError(msg)
        if img.shape[0] < 16 or img.shape[1] < 16:
            msg = f"Frame.image must be at least 16x16 px, got {img.shape[1]}x{img.shape[0]}"
            raise ValueError(msg)
        if self.template is not None and self.template.shape[:2] != img.shape[:2]:
            msg = (
                f"Frame.template must match the image size {img.shape[1]}x{img.shape[0]}, "
                f"got {self.template.shape[1]}x{self.template.shape[0]}"
            )
            raise ValueError(msg)

    @property
    def width_px(self) -> int:
        return int(self.image.shape[1])

    @property
    def height_px(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class Registration:
    """Result of aligning a board under test to its golden template.

    ``transform`` is the 2x3 affine matrix that maps template coordinates to frame coordinates
    (the warp applied with ``WARP_INVERSE_MAP``). ``residual`` is the mean absolute grey-level
    difference (0..255) between the warped frame and the template; ``correlation`` is ECC's
    enhanced correlation coefficient (1.0 is a perfect match).
    """

    transform: np.ndarray
    shift_x_px: float
    shift_y_px: float
    rotation_deg: float
    correlation: float
    residual: float

    def __post_init__(self) -> None:
        if self.transform.shape != (2, 3):
            msg = f"Registration.transform must have shape (2, 3), got {self.transform.shape}"
            raise ValueError(msg)

    @classmethod
    def identity(cls, correlation: float = 1.0, residual: float = 0.0) -> Registration:
        return cls(np.eye(2, 3, dtype=np.float32), 0.0, 0.0, 0.0, correlation, residual)


@dataclass(frozen=True)
class Trigger:
    """A part to inspect, as the PLC announced it (part sequence and serial/lot text).

    ``inspection_id`` is the id the PLC link gave this part (its register ``inspection_id``,
    0 when the trigger did not come from a PLC); the inspection result carries the same id, so
    the PLC's record, the database row and the log name one inspection by one number.
    """

    part_sequence: int
    serial: str = ""
    received_ns: int = 0
    inspection_id: int = 0

    def __post_init__(self) -> None:
        for name in ("part_sequence", "inspection_id"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFFFFFF:
                msg = f"Trigger.{name} must fit 32 bits unsigned, got {value}"
                raise ValueError(msg)


@dataclass(frozen=True)
class LineAnswer:
    """What the line (the PLC) was told about one inspection, once the PLC link answered it.

    Usually the inspection's own verdict with no ``fault``. A fault of the link makes it
    ERROR where the inspection said OK or NG: ``fault`` names the PLC error code
    (``INSPECTION_TIMEOUT``, ``PLC_HEARTBEAT_LOST``, ``STATION_STOPPING`` ...). ``verdict`` is
    None when the result was withdrawn before the PLC collected it (``RESULT_DISCARDED``).
    """

    inspection_id: int
    verdict: Verdict | None
    fault: str = ""


STAGES: tuple[str, ...] = (
    "acquire",
    "register",
    "preprocess",
    "infer",
    "postprocess",
    "decide",
)


@dataclass(frozen=True)
class InspectionResult:
    """Everything the cycle knows about one inspected board; what subscribers receive."""

    inspection_id: int
    frame_id: int
    frame_name: str
    recipe_name: str
    recipe_hash: str
    model_hash: str
    backend: str
    verdict: Verdict
    defects: Defects
    review_defects: Defects
    stages_ms: dict[str, float]
    cycle_ms: float
    over_budget: bool
    registration: Registration | None
    #: Why the board got ERROR, in words (empty for every other verdict); ``error_kind`` says
    #: which kind of failure it was.
    error: str = ""
    error_kind: ErrorKind = ErrorKind.NONE
    #: Why the verdict rules decided what they did (``aoi.vision.verdict.Decision.reason``);
    #: empty for ERROR, which no rule decides.
    verdict_reason: str = ""
    truth: GroundTruth | None = None
    timestamp_utc: float = 0.0
    part_sequence: int = 0
    serial: str = ""
    #: The frame as the source delivered it (for the image archive and the GUI); not copied.
    frame: Frame | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.verdict, Verdict):
            msg = f"InspectionResult.verdict must be a Verdict, got {self.verdict!r}"
            raise TypeError(msg)
        for name in ("defects", "review_defects"):
            if not isinstance(getattr(self, name), Defects):
                found = type(getattr(self, name)).__name__
                msg = f"InspectionResult.{name} must be Defects, got {found}"
                raise TypeError(msg)
        if not isinstance(self.error_kind, ErrorKind):
            msg = f"InspectionResult.error_kind must be an ErrorKind, got {self.error_kind!r}"
            raise TypeError(msg)
        if self.verdict is Verdict.ERROR:
            if self.error_kind is ErrorKind.NONE or not self.error:
                msg = (
                    "InspectionResult with verdict ERROR must say which failure in .error_kind "
                    f"(not NONE) and why in .error, got {self.error_kind.name} {self.error!r}"
                )
                raise ValueError(msg)
        elif self.error_kind is not ErrorKind.NONE:
            msg = (
                f"InspectionResult with verdict {self.verdict.name} must have error_kind NONE, "
                f"got {self.error_kind.name}"
            )
            raise ValueError(msg)
        if self.verdict is Verdict.NG and not self.defects:
            msg = "InspectionResult with verdict NG must carry at least one defect"
            raise ValueError(msg)
        unknown = set(self.stages_ms) - set(STAGES)
        if unknown:
            msg = (
                f"InspectionResult.stages_ms has unknown stages {sorted(unknown)}; known: {STAGES}"
            )
            raise ValueError(msg)
        if self.cycle_ms < 0:
            msg = f"InspectionResult.cycle_ms must be >= 0, got {self.cycle_ms}"
            raise ValueError(msg)

    @property
    def top_defect(self) -> Defect | None:
        return self.defects.top()


@dataclass(frozen=True)
class ClassMaps:
    """The network's output reduced per cell: winning class and its probability.

    ``classes`` is uint8 ``[N, H/S, W/S]`` (the argmax over the classes, ties to the lower class
    id, 0 background); ``scores`` is that class's probability, float32 (identical defects to the
    full maps) or float16 (a third of the bytes; scores rounded to float16).
    """

    classes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.classes.shape != self.scores.shape or self.classes.ndim != 3:
            msg = (
                f"ClassMaps needs classes and scores of one [N, H, W] shape, got "
                f"{self.classes.shape} and {self.scores.shape}"
            )
            raise ValueError(msg)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.classes.shape

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, index: slice) -> ClassMaps:
        return ClassMaps(self.classes[index], self.scores[index])


@dataclass(frozen=True)
class FrameBatch:
    """One whole frame for a backend that registers and warps it on the device
    (``takes_frames``), in place of a ``[1, 2, H, W]`` batch: ``frame`` is the board under test
    as the camera gave it (uint8 ``[h, w]``, unpadded, unregistered), ``reference`` the template
    side (uint8 ``[1, 1, H, W]``, padded to the network's size) and ``reference_version`` a
    number that changes whenever the reference's pixels do, so the backend uploads the template
    once and the frame once (aoi/inference/frame_input.py).
    """

    frame: np.ndarray
    reference: np.ndarray
    reference_version: int
    #: The frame went through registration just before (it is no pair bringing its own
    #: template): only then may the backend read the upload registration made of it.
    registered: bool = False

    def __post_init__(self) -> None:
        ok = (
            self.frame.ndim == 2 and self.reference.ndim == 4 and self.reference.shape[:2] == (1, 1)
        )
        if not ok or self.frame.dtype != np.uint8 or self.reference.dtype != np.uint8:
            msg = (
                f"FrameBatch needs a uint8 [h, w] frame and a uint8 [1, 1, H, W] reference, got "
                f"{self.frame.dtype} {list(self.frame.shape)} and "
                f"{self.reference.dtype} {list(self.reference.shape)}"
            )
            raise ValueError(msg)
        fh, fw = self.frame.shape
        if fh > self.reference.shape[2] or fw > self.reference.shape[3]:
            msg = (
                f"FrameBatch's frame {fw}x{fh} px is larger than its reference "
                f"{self.reference.shape[3]}x{self.reference.shape[2]} px"
            )
            raise ValueError(msg)

    def stacked(self) -> np.ndarray:
        """The ``[1, 2, H, W]`` batch the frame stands for: the frame padded as
        :class:`aoi.vision.preprocess.InputBuilder` pads a whole frame (its last row and column
        repeated), beside the reference."""
        _n, _c, h, w = self.reference.shape
        fh, fw = self.frame.shape
        out = np.empty((1, 2, h, w), np.uint8)
        out[0, 0] = np.pad(self.frame, ((0, h - fh), (0, w - fw)), mode="edge")
        out[0, 1] = self.reference[0, 0]
        return out
