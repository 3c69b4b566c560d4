"""The database schema (SQLAlchemy 2.0 typed ORM): what a quality engineer asks about a board.

``inspections`` holds one row per inspected board: when (UTC), where (station), with what (recipe
name and content hash, model hash, backend), which part (PLC part sequence, inspection id, serial),
the verdict and the cycle's timing, and where its images are archived. ``defects`` holds what the
network found on it, with the review state of each defect in IPC-CFX's ``VerificationResult``
values; ``reviews`` keeps every decision an operator took and ``audit_events`` every change of
settings. ``recipes`` keeps each recipe content the station has inspected with.

The primary key of an inspection is a time-ordered UUID made when the verdict is published, so a
record replayed from the journal can never be inserted twice, and stations of a fleet never
collide. Times are stored as UTC without a zone (the same on SQLite and PostgreSQL) and come back
zone-aware. This module is the schema at the newest migration; ``migrations/`` holds each step.
"""

from __future__ import annotations

import enum
import os
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Constraint and index names spelled out, so that migrations (and SQLite's batch mode) can name
#: what they change.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

VERDICTS: tuple[str, ...] = ("OK", "NG", "REVIEW", "ERROR")


class Verification(enum.StrEnum):
    """Review state of a defect: IPC-CFX ``VerificationResult``, spelled as CFX spells it.

    ``DefectRejected`` is a false call; ``DefectAccepted`` (CFX 1.5) is a false call for which
    corrective action on the process is wanted all the same. Both count as false calls.
    """

    NOT_VERIFIED = "NotVerifiedYet"
    CONFIRMED = "DefectConfirmed"
    FALSE_CALL = "DefectRejected"
    ACCEPTED = "DefectAccepted"


FALSE_CALLS: frozenset[str] = frozenset({Verification.FALSE_CALL, Verification.ACCEPTED})
BANDS: tuple[str, ...] = ("defect", "review")


def _sql_list(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


#: Random bits of the UUIDs: seeded from the OS once (and again in a forked child), so that
#: making one costs no system call on the critical path. Not for secrets: for uniqueness.
_rng = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))


def new_uuid() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): 48 bits of Unix milliseconds, 74 random bits.

    Rows inserted in time order land at the end of the primary-key index (as with an integer
    key) instead of at random places in it.
    """
    ms = time.time_ns() // 1_000_000
    rand = _rng.getrandbits(74)
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62) << 64
        | 0b10 << 62
        | (rand & 0x3FFF_FFFF_FFFF_FFFF)
    )
    return uuid.UUID(int=value)


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC time: stored without a zone, read back zone-aware; naive times are refused."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = f"times given to the database must carry a zone, got naive {value}"
            raise ValueError(msg)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(
        self,
        value: Any,
        dialect: Dialect,  # noqa: ARG002
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


#: An auto-incremented 64-bit key (SQLite only makes INTEGER PRIMARY KEY an alias of its rowid).
BigKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Inspection(Base):
    """One inspected board."""

    __tablename__ = "inspections"
    __table_args__ = (
        CheckConstraint(f"verdict IN ({_sql_list(VERDICTS)})", name="verdict"),
        Index("ix_inspections_station_id_inspected_at", "station_id", "inspected_at"),
        Index("ix_inspections_recipe_name_inspected_at", "recipe_name", "inspected_at"),
    )

    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    station_id: Mapped[str] = mapped_column(String(64))
    inspected_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    #: The station's running inspection number, echoed to the PLC with the verdict.
    inspection_id: Mapped[int] = mapped_column(BigInteger)
    #: The part sequence number the PLC announced the board with (0 when untriggered).
    part_sequence: Mapped[int] = mapped_column(BigInteger, index=True)
    serial: Mapped[str] = mapped_column(String(128), index=True)
    recipe_name: Mapped[str] = mapped_column(String(128))
    recipe_hash: Mapped[str] = mapped_column(String(64))
    model_hash: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(8))
    defect_count: Mapped[int] = mapped_column(Integer)
    review_count: Mapped[int] = mapped_column(Integer)
    top_class: Mapped[str | None] = mapped_column(String(32))
    cycle_ms: Mapped[float] = mapped_column(Float)
    over_budget: Mapped[bool] = mapped_column(Boolean)
    #: Milliseconds per stage of the cycle (acquire, register, ...).
    stages_ms: Mapped[dict[str, float]] = mapped_column(JSON)
    #: shift_x_px, shift_y_px, rotation_deg, correlation, residual of the alignment.
    registration: Mapped[dict[str, float] | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(Text)
    #: ``aoi.types.ErrorKind`` value: which kind of failure gave ERROR (``none`` otherwise).
    error_kind: Mapped[str] = mapped_column(String(16), server_default="none")
    #: Why the verdict rules decided what they did (empty for ERROR and for rows before 0003).
    verdict_reason: Mapped[str] = mapped_column(Text, server_default="")
    #: The verdict the line (PLC) received; NULL with no PLC, or before the PLC answered.
    #: ERROR with ``line_error`` where a link fault overrode an OK/NG (see LineAnswer).
    line_verdict: Mapped[str | None] = mapped_column(String(8), nullable=True)
    line_error: Mapped[str] = mapped_column(String(24), server_default="")
    frame_id: Mapped[int] = mapped_column(BigInteger)
    frame_name: Mapped[str] = mapped_column(String(256))
    #: Lossless image and overlay preview, absolute paths on the station (None: not archived).
    image_path: Mapped[str | None] = mapped_column(String(1024))
    preview_path: Mapped[str | None] = mapped_column(String(1024))

    defects: Mapped[list[Defect]] = relationship(
        back_populates="inspection",
        order_by="Defect.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Defect(Base):
    """One defect found on a board, in template (registered) pixel coordinates."""

    __tablename__ = "defects"
    __table_args__ = (
        CheckConstraint(f"band IN ({_sql_list(BANDS)})", name="band"),
        CheckConstraint(
            f"review_state IN ({_sql_list([v.value for v in Verification])})",
            name="review_state",
        ),
    )

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    inspection_uuid: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("inspections.uuid", ondelete="CASCADE"), index=True
    )
    #: ``defect`` (over the recipe's score: makes the board NG) or ``review`` (review band).
    band: Mapped[str] = mapped_column(String(8))
    class_id: Mapped[int] = mapped_column(SmallInteger)
    class_name: Mapped[str] = mapped_column(String(32), index=True)
    x0_px: Mapped[int] = mapped_column(Integer)
    y0_px: Mapped[int] = mapped_column(Integer)
    x1_px: Mapped[int] = mapped_column(Integer)
    y1_px: Mapped[int] = mapped_column(Integer)
    area_px: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    review_state: Mapped[str] = mapped_column(
        String(16), index=True, default=Verification.NOT_VERIFIED.value
    )

    inspection: Mapped[Inspection] = relationship(back_populates="defects")
    reviews: Mapped[list[Review]] = relationship(
        back_populates="defect", order_by="Review.id", passive_deletes=True
    )


class Review(Base):
    """One decision of an operator about one defect."""

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint(
            f"decision IN ({_sql_list([v.value for v in Verification])})", name="decision"
        ),
    )

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    defect_id: Mapped[int] = mapped_column(ForeignKey("defects.id", ondelete="CASCADE"), index=True)
    reviewed_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    reviewer: Mapped[str] = mapped_column(String(64))
    station_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text)

    defect: Mapped[Defect] = relationship(back_populates="reviews")


class AuditEvent(Base):
    """Who changed what, from which value to which (recipes, settings, users)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    who: Mapped[str] = mapped_column(String(64))
    station_id: Mapped[str] = mapped_column(String(64))
    what: Mapped[str] = mapped_column(String(256))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)


class RecipeSeen(Base):
    """A recipe content the station inspected with (its hash is on every inspection)."""

    __tablename__ = "recipes"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), index=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The recipe file as the station read it (TOML); empty until the station noted it.
    content: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
