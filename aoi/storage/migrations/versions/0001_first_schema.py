"""First schema: inspections, defects, reviews, audit events.

Revision ID: 0001
Revises:
Create Date: 2025-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aoi.storage.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
REVIEW_STATES = "'NotVerifiedYet', 'DefectConfirmed', 'DefectRejected', 'DefectAccepted'"


def upgrade() -> None:
    op.create_table(
        "inspections",
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("inspected_at", UtcDateTime(), nullable=False),
        sa.Column("inspection_id", sa.BigInteger(), nullable=False),
        sa.Column("part_sequence", sa.BigInteger(), nullable=False),
        sa.Column("serial", sa.String(128), nullable=False),
        sa.Column("recipe_name", sa.String(128), nullable=False),
        sa.Column("recipe_hash", sa.String(64), nullable=False),
        sa.Column("model_hash", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("defect_count", sa.Integer(), nullable=False),
        sa.Column("review_count", sa.Integer(), nullable=False),
        sa.Column("top_class", sa.String(32), nullable=True),
        sa.Column("cycle_ms", sa.Float(), nullable=False),
        sa.Column("over_budget", sa.Boolean(), nullable=False),
        sa.Column("stages_ms", sa.JSON(), nullable=False),
        sa.Column("registration", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("frame_id", sa.BigInteger(), nullable=False),
        sa.Column("frame_name", sa.String(256), nullable=False),
        sa.Column("image_path", sa.String(1024), nullable=True),
        sa.Column("preview_path", sa.String(1024), nullable=True),
        sa.CheckConstraint("verdict IN ('OK', 'NG', 'REVIEW', 'ERROR')", name="verdict"),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_inspections")),
    )
    op.create_index(op.f("ix_inspections_inspected_at"), "inspections", ["inspected_at"])

    op.create_table(
        "defects",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("inspection_uuid", sa.Uuid(), nullable=False),
        sa.Column("band", sa.String(8), nullable=False),
        sa.Column("class_id", sa.SmallInteger(), nullable=False),
        sa.Column("class_name", sa.String(32), nullable=False),
        sa.Column("x0_px", sa.Integer(), nullable=False),
        sa.Column("y0_px", sa.Integer(), nullable=False),
        sa.Column("x1_px", sa.Integer(), nullable=False),
        sa.Column("y1_px", sa.Integer(), nullable=False),
        sa.Column("area_px", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("review_state", sa.String(16), nullable=False),
        sa.CheckConstraint("band IN ('defect', 'review')", name="band"),
        sa.CheckConstraint(f"review_state IN ({REVIEW_STATES})", name="review_state"),
        sa.ForeignKeyConstraint(
            ["inspection_uuid"],
            ["inspections.uuid"],
            name=op.f("fk_defects_inspection_uuid_inspections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_defects")),
    )
    op.create_index(op.f("ix_defects_inspection_uuid"), "defects", ["inspection_uuid"])

    op.create_table(
        "reviews",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("defect_id", BigKey, nullable=False),
        sa.Column("reviewed_at", UtcDateTime(), nullable=False),
        sa.Column("reviewer", sa.String(64), nullable=False),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.CheckConstraint(f"decision IN ({REVIEW_STATES})", name="decision"),
        sa.ForeignKeyConstraint(
            ["defect_id"],
            ["defects.id"],
            name=op.f("fk_reviews_defect_id_defects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_defect_id"), "reviews", ["defect_id"])

    op.create_table(
        "audit_events",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("who", sa.String(64), nullable=False),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("what", sa.String(256), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("reviews")
    op.drop_table("defects")
    op.drop_table("inspections")
