"""The verdict the line received, beside the inspection's own.

A PLC link fault (INSPECTION_TIMEOUT, PLC_HEARTBEAT_LOST, LINK_LOST, STATION_STOPPING) answers
the line ERROR where the inspection said OK or NG; before this revision only the inspection's
verdict was stored. Rows written before it have no line verdict (NULL): it was not recorded.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inspections", sa.Column("line_verdict", sa.String(8), nullable=True))
    op.add_column(
        "inspections",
        sa.Column("line_error", sa.String(24), server_default="", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("line_error")
        batch.drop_column("line_verdict")
