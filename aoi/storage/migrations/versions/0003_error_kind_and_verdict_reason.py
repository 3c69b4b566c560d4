"""The kind of an ERROR and the reason of a verdict, on every inspection.

Rows written before this revision get the kind their error text's prefix named (the cycle wrote
``camera timeout: ...`` and ``bad frame: ...`` then) and ``other`` for any other ERROR; they have
no verdict reason.

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: The error text's prefix before 0003, and the kind it stood for.
LEGACY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("camera timeout%", "camera_timeout"),
    ("bad frame%", "bad_frame"),
)


def upgrade() -> None:
    op.add_column(
        "inspections",
        sa.Column("error_kind", sa.String(16), server_default="none", nullable=False),
    )
    op.add_column(
        "inspections",
        sa.Column("verdict_reason", sa.Text(), server_default="", nullable=False),
    )
    inspections = sa.table(
        "inspections",
        sa.column("verdict", sa.String),
        sa.column("error", sa.Text),
        sa.column("error_kind", sa.String),
    )
    errors = inspections.c.verdict == "ERROR"
    for prefix, kind in LEGACY_PREFIXES:
        op.execute(
            inspections.update()
            .where(errors, inspections.c.error.like(prefix))
            .values(error_kind=kind)
        )
    op.execute(
        inspections.update()
        .where(errors, inspections.c.error_kind == "none")
        .values(error_kind="other")
    )


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("verdict_reason")
        batch.drop_column("error_kind")
