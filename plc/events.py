"""What the handshake exchanges with the rest of the station: the active recipe, a part's result
block, and the events the link acts on. Plain frozen dataclasses, no behaviour beyond conversion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aoi.types import ErrorKind, InspectionResult, LineAnswer, Verdict
from plc.protocol import U16_MAX, U32_MAX, ErrorCode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveRecipe:
    """The recipe the station inspects with, as the PLC sees it."""

    product_code: int
    checksum: int = 0
    name: str = ""

    @classmethod
    def from_hash(cls, product_code: int, content_hash: str, name: str = "") -> ActiveRecipe:
        """``checksum`` is the first 32 bits of the recipe's hex content hash."""
        return cls(product_code, int(content_hash[:8], 16) if content_hash else 0, name)


#: The PLC's error code for each kind of ERROR; registration and inference failures (and any
#: other known failure of a stage) are one code to the PLC, the part was not inspected.
ERROR_CODES: dict[ErrorKind, ErrorCode] = {
    ErrorKind.NONE: ErrorCode.NONE,
    ErrorKind.CAMERA_TIMEOUT: ErrorCode.CAMERA_TIMEOUT,
    ErrorKind.CAMERA_LOST: ErrorCode.CAMERA_LOST,
    ErrorKind.BAD_FRAME: ErrorCode.BAD_FRAME,
    ErrorKind.REGISTRATION: ErrorCode.INSPECTION_FAILED,
    ErrorKind.INFERENCE: ErrorCode.INSPECTION_FAILED,
    ErrorKind.STORAGE: ErrorCode.STORAGE_UNAVAILABLE,
    ErrorKind.OTHER: ErrorCode.INSPECTION_FAILED,
    ErrorKind.INTERNAL: ErrorCode.INSPECTION_FAILED,
}


def error_code_for(kind: ErrorKind) -> ErrorCode:
    """The error code the PLC gets for a kind of ERROR (NONE for a result that is no ERROR)."""
    return ERROR_CODES[kind]


@dataclass(frozen=True)
class PartResult:
    """The result block of one part, as the PLC will read it."""

    part_sequence: int
    verdict: Verdict
    defect_count: int = 0
    top_class: int = 0
    top_score_permille: int = 0
    cycle_time_us: int = 0
    error_code: ErrorCode = ErrorCode.NONE
    reason: str = ""
    #: The inspection this result answers (0: not known, the part sequence alone is checked).
    inspection_id: int = 0

    @classmethod
    def from_inspection(cls, r: InspectionResult) -> PartResult:
        top = r.top_defect or r.review_defects.top()
        return cls(
            part_sequence=r.part_sequence,
            verdict=r.verdict,
            defect_count=min(len(r.defects), U16_MAX),
            top_class=top.class_id if top else 0,
            top_score_permille=round(top.score * 1000) if top else 0,
            cycle_time_us=min(round(r.cycle_ms * 1000), U32_MAX),
            error_code=error_code_for(r.error_kind),
            reason=r.error,
            inspection_id=r.inspection_id,
        )


# -- events the link acts on ------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerAccepted:
    inspection_id: int
    part_sequence: int
    serial: str


@dataclass(frozen=True)
class TriggerMissed:
    reason: str


@dataclass(frozen=True)
class RecipeChangeRequested:
    product_code: int


@dataclass(frozen=True)
class FaultRaised:
    code: ErrorCode
    message: str


@dataclass(frozen=True)
class ErrorCleared:
    code: ErrorCode


@dataclass(frozen=True)
class FaultCleared:
    """The cause of a fault condition went away (the latch stays until CLEAR_ERROR)."""

    code: ErrorCode


@dataclass(frozen=True)
class LinkStateChanged:
    """The link to the PLC changed state (``old`` and ``new`` are LinkState values)."""

    old: str
    new: str
    detail: str = ""


@dataclass(frozen=True)
class ResultAcknowledged:
    inspection_id: int


@dataclass(frozen=True)
class PartAbandoned:
    """A part answered ERROR without an inspection result (timeout, station stopping)."""

    inspection_id: int
    code: ErrorCode


@dataclass(frozen=True)
class ResultDiscarded:
    """A result the PLC never acknowledged, dropped by its CLEAR_ERROR (say, after a restart)."""

    inspection_id: int
    part_sequence: int


Event = (
    TriggerAccepted
    | TriggerMissed
    | RecipeChangeRequested
    | FaultRaised
    | ErrorCleared
    | FaultCleared
    | LinkStateChanged
    | ResultAcknowledged
    | PartAbandoned
    | ResultDiscarded
    | LineAnswer
)

#: The ``fault`` of a :class:`LineAnswer` whose result the PLC's CLEAR_ERROR withdrew.
RESULT_DISCARDED = "RESULT_DISCARDED"


def log_events(events: list[Event]) -> None:
    """Each event of the handshake that an operator or integrator should find in the log."""
    for event in events:
        if isinstance(event, FaultRaised):
            log.warning("PLC link fault %s: %s", event.code.name, event.message)
        elif isinstance(event, TriggerMissed):
            log.warning("trigger missed: %s", event.reason)
        elif isinstance(event, ErrorCleared):
            log.info("PLC cleared error %s", event.code.name)
        elif isinstance(event, PartAbandoned):
            log.warning("inspection %d answered ERROR (%s)", event.inspection_id, event.code.name)
        elif isinstance(event, ResultDiscarded):
            log.warning(
                "PLC's CLEAR_ERROR discarded the unacknowledged result of inspection %d "
                "(part %d): the PLC never collected it",
                event.inspection_id,
                event.part_sequence,
            )
