"""core: daily traffic counts for the dashboard (core.traffic)

Revision ID: core_0003
Revises: core_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0003"
down_revision = "core_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traffic_daily",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("count", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("day", "kind", name="pk_traffic_daily"),
    )


def downgrade() -> None:
    op.drop_table("traffic_daily")
