"""Recipes seen, and the indexes behind lookups, yield per recipe/station and the Pareto.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from aoi.storage.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

INDEXES: tuple[tuple[str, str, list[str]], ...] = (
    ("ix_inspections_serial", "inspections", ["serial"]),
    ("ix_inspections_part_sequence", "inspections", ["part_sequence"]),
    ("ix_inspections_station_id_inspected_at", "inspections", ["station_id", "inspected_at"]),
    ("ix_inspections_recipe_name_inspected_at", "inspections", ["recipe_name", "inspected_at"]),
    ("ix_defects_class_name", "defects", ["class_name"]),
    ("ix_defects_review_state", "defects", ["review_state"]),
    ("ix_reviews_reviewed_at", "reviews", ["reviewed_at"]),
)


def upgrade() -> None:
    op.create_table(
        "recipes",
        sa.Column("id", BigKey, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipes")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_recipes_content_hash")),
    )
    op.create_index(op.f("ix_recipes_name"), "recipes", ["name"])
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index(op.f("ix_recipes_name"), table_name="recipes")
    op.drop_table("recipes")
