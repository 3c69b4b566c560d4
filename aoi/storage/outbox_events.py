"""The plant outbox's events: what one journal record (or review) becomes for the brokers.

:class:`OutboxEvent` is what a :class:`~aoi.storage.outbox.Sink` sends; its ``message_id`` is
made from the inspection id, so a consumer recognises a message it got before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aoi.storage.errors import StorageError
from aoi.storage.journal_read import Position
from aoi.storage.records import INSPECTION, RECIPE

REVIEW = "review"


class PublishError(StorageError):
    """A broker refused or did not acknowledge a message (or cannot be reached); ``done``:
    how many events of a batch (``send_many``) it acknowledged before, in order."""

    def __init__(self, message: str, done: int = 0) -> None:
        super().__init__(message)
        self.done = done


@dataclass(frozen=True)
class OutboxEvent:
    """One message for the plant: ``kind`` is ``inspection``, ``recipe`` or ``review``."""

    kind: str
    message_id: str
    payload: dict[str, Any]


@dataclass
class Pending:
    kind: str
    record: dict[str, Any]
    prev: Position
    end: Position
    seen_at: float
    #: Its key among the outbox's pending events (the inspection's uuid, or the recipe's turn).
    key: str = ""
    line: dict[str, Any] | None = None
    cycle: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _defects(rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [
        {"class_id": c, "class_name": n, "bbox_xyxy_px": [x0, y0, x1, y1], "area_px": a, "score": s}
        for c, n, x0, y0, x1, y1, a, s in rows
    ]


def inspection_event(station_id: str, p: Pending) -> OutboxEvent:
    """The event of one inspection: its record completed by its ``line``/``cycle`` records."""
    r = p.record
    line = p.line or {}
    cycle = p.cycle or {}
    payload = {
        "inspection_id": r["inspection_id"],
        "uuid": r["uuid"],
        "station_id": r.get("station_id", station_id),
        "ts": r["ts"],
        "verdict": r["verdict"],
        "verdict_reason": r.get("verdict_reason", ""),
        "line_verdict": line.get("line_verdict"),
        "line_error": line.get("line_error", ""),
        "recipe_name": r["recipe_name"],
        "recipe_hash": r["recipe_hash"],
        "model_hash": r["model_hash"],
        "part_sequence": r["part_sequence"],
        "serial": r["serial"],
        "cycle_ms": cycle.get("cycle_ms", r["cycle_ms"]),
        "over_budget": cycle.get("over_budget", r["over_budget"]),
        "image_path": r.get("image_path"),
        "error": r.get("error", ""),
        "defects": _defects(r["defects"]),
        "review_defects": _defects(r["review_defects"]),
    }
    return OutboxEvent(INSPECTION, f"{station_id}/inspection/{r['inspection_id']}", payload)


def review_event(station_id: str, review: dict[str, Any]) -> OutboxEvent:
    """The event of one review decision (a row of :class:`ReviewFeed`)."""
    payload = {"station_id": station_id, **review}
    return OutboxEvent(REVIEW, f"{station_id}/review/{review['review_id']}", payload)


def recipe_event(station_id: str, p: Pending) -> OutboxEvent:
    r = p.record
    payload = {"station_id": station_id, "name": r["name"], "hash": r["hash"], "ts": r["ts"]}
    return OutboxEvent(RECIPE, f"{station_id}/recipe/{r['hash'][:16]}/{r['ts']:.6f}", payload)
