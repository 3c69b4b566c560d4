"""Records as the journal holds them, made from results and turned into table rows.

A record is a plain JSON object, readable on its own (the journal is also what an engineer opens
when the database is gone). Kinds, by ``t``: ``inspection`` (one board, with its defects),
``cycle`` (the final cycle time of an inspection, known only after the PLC write), ``line``
(what the PLC was told about an inspection, see :class:`aoi.types.LineAnswer`), ``recipe`` (a
recipe content the station inspects with).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from aoi.types import Defects, ErrorKind, InspectionResult, LineAnswer, Verdict

INSPECTION, CYCLE, RECIPE, LINE = "inspection", "cycle", "recipe", "line"

#: Bumped when a record's fields change; replay reads every version it knows.
#: 2: ``error_kind`` and ``verdict_reason`` (version 1 named the kind by the error's prefix).
RECORD_VERSION = 2

#: Records that complete an inspection's row after the fact, and the columns each sets.
UPDATE_FIELDS: dict[str, tuple[str, ...]] = {
    CYCLE: ("cycle_ms", "over_budget"),
    LINE: ("line_verdict", "line_error"),
}


def _defects(found: Defects) -> list[list[Any]]:
    """One row per defect: class id, class name, x0, y0, x1, y1, area, score."""
    # Plain Python numbers (``tolist``): drivers store numpy scalars as blobs.
    return [
        [cid, name, *box, area, score]
        for cid, name, box, area, score in zip(
            found.class_ids.tolist(),
            found.class_names,
            found.bbox_xyxy_px.tolist(),
            found.areas_px.tolist(),
            found.scores.tolist(),
            strict=True,
        )
    ]


def inspection_record(
    result: InspectionResult,
    record_uuid: uuid.UUID,
    station_id: str,
    image_path: str | None,
    preview_path: str | None,
) -> dict[str, Any]:
    """The journal record of one inspection (cheap: it is built on the critical path)."""
    reg = result.registration
    return {
        "t": INSPECTION,
        "v": RECORD_VERSION,
        "uuid": str(record_uuid),
        "station_id": station_id,
        "ts": float(result.timestamp_utc),
        "inspection_id": int(result.inspection_id),
        "part_sequence": int(result.part_sequence),
        "serial": result.serial,
        "recipe_name": result.recipe_name,
        "recipe_hash": result.recipe_hash,
        "model_hash": result.model_hash,
        "backend": result.backend,
        "verdict": result.verdict.name,
        "cycle_ms": float(result.cycle_ms),
        "over_budget": bool(result.over_budget),
        "stages_ms": {k: float(v) for k, v in result.stages_ms.items()},
        "registration": None
        if reg is None
        else [
            float(v)
            for v in (
                reg.shift_x_px,
                reg.shift_y_px,
                reg.rotation_deg,
                reg.correlation,
                reg.residual,
            )
        ],
        "error": result.error,
        "error_kind": result.error_kind.value,
        "verdict_reason": result.verdict_reason,
        "frame_id": int(result.frame_id),
        "frame_name": result.frame_name,
        "image_path": image_path,
        "preview_path": preview_path,
        "defects": _defects(result.defects),
        "review_defects": _defects(result.review_defects),
    }


def cycle_record(record_uuid: str, cycle_ms: float, over_budget: bool) -> dict[str, Any]:
    return {
        "t": CYCLE,
        "uuid": record_uuid,
        "cycle_ms": float(cycle_ms),
        "over_budget": bool(over_budget),
    }


def line_record(record_uuid: str, answer: LineAnswer) -> dict[str, Any]:
    return {"t": LINE, "uuid": record_uuid, **line_fields(answer)}


def line_fields(answer: LineAnswer) -> dict[str, Any]:
    """The ``line_verdict`` / ``line_error`` columns of an answer (verdict None: withdrawn)."""
    verdict = answer.verdict.name if answer.verdict is not None else None
    return {"line_verdict": verdict, "line_error": answer.fault}


def recipe_record(name: str, content_hash: str, content: str, ts: float) -> dict[str, Any]:
    return {"t": RECIPE, "name": name, "hash": content_hash, "content": content, "ts": ts}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


_REGISTRATION = ("shift_x_px", "shift_y_px", "rotation_deg", "correlation", "residual")


def _error_kind(rec: dict[str, Any]) -> str:
    """The record's error kind; a version 1 record's from its error's prefix, as 0003 does."""
    if "error_kind" in rec:
        return str(rec["error_kind"])
    if rec["verdict"] != Verdict.ERROR.name:
        return ErrorKind.NONE.value
    for prefix, kind in (
        ("camera timeout", ErrorKind.CAMERA_TIMEOUT),
        ("bad frame", ErrorKind.BAD_FRAME),
    ):
        if rec["error"].startswith(prefix):
            return kind.value
    return ErrorKind.OTHER.value


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def inspection_row(rec: dict[str, Any]) -> dict[str, Any]:
    """The ``inspections`` row of an inspection record."""
    defects = rec["defects"]
    top = max(defects, key=lambda d: d[7], default=None)
    reg = rec["registration"]
    return {
        "uuid": uuid.UUID(rec["uuid"]),
        "station_id": rec["station_id"],
        "inspected_at": utc(rec["ts"]),
        "inspection_id": rec["inspection_id"],
        "part_sequence": rec["part_sequence"],
        "serial": rec["serial"],
        "recipe_name": rec["recipe_name"],
        "recipe_hash": rec["recipe_hash"],
        "model_hash": rec["model_hash"],
        "backend": rec["backend"],
        "verdict": rec["verdict"],
        "defect_count": len(defects),
        "review_count": len(rec["review_defects"]),
        "top_class": top[1] if top else None,
        "cycle_ms": rec["cycle_ms"],
        "over_budget": rec["over_budget"],
        "stages_ms": rec["stages_ms"],
        "registration": None
        if reg is None
        else {k: _finite(v) for k, v in zip(_REGISTRATION, reg, strict=True)},
        "error": rec["error"],
        "error_kind": _error_kind(rec),
        "verdict_reason": rec.get("verdict_reason", ""),
        # Set by a ``line`` record; every row of a batch insert names the same columns.
        "line_verdict": None,
        "line_error": "",
        "frame_id": rec["frame_id"],
        "frame_name": rec["frame_name"],
        "image_path": rec["image_path"],
        "preview_path": rec["preview_path"],
    }


def defect_rows(rec: dict[str, Any], inspection_uuid: uuid.UUID) -> list[dict[str, Any]]:
    """The ``defects`` rows of an inspection record (called defects, then review-band ones)."""
    rows = []
    for band, key in (("defect", "defects"), ("review", "review_defects")):
        for class_id, class_name, x0, y0, x1, y1, area, score in rec[key]:
            rows.append(
                {
                    "inspection_uuid": inspection_uuid,
                    "band": band,
                    "class_id": class_id,
                    "class_name": class_name,
                    "x0_px": x0,
                    "y0_px": y0,
                    "x1_px": x1,
                    "y1_px": y1,
                    "area_px": area,
                    "score": score,
                    "review_state": "NotVerifiedYet",
                }
            )
    return rows
