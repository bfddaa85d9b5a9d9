"""admin: the first administrator created by `eauth init` (until they enrol their own second factor)

Revision ID: admin_0002
Revises: admin_0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "admin_0002"
down_revision = "admin_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_bootstrap",
        sa.Column("person_id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("enrolled_at", sa.String(32)),
    )


def downgrade() -> None:
    op.drop_table("admin_bootstrap")
