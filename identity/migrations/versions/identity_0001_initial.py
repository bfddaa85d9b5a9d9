"""identity: persons, organisations, memberships, operators

Revision ID: identity_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0001"
down_revision = None
branch_labels = ("identity",)
depends_on = ("core_0001",)


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("id_number_ct", sa.Text(), nullable=False),
        sa.Column("id_number_idx", sa.String(64), nullable=False),
        sa.Column("id_number_masked", sa.String(32), nullable=False),
        sa.Column("phone_ct", sa.Text()),
        sa.Column("phone_idx", sa.String(64)),
        sa.Column("phone_masked", sa.String(32)),
        sa.Column("email_ct", sa.Text()),
        sa.Column("email_idx", sa.String(64)),
        sa.Column("email_masked", sa.String(200)),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_persons"),
        sa.UniqueConstraint("id_number_idx", name="uq_persons_id_number_idx"),
        sa.UniqueConstraint("phone_idx", name="uq_persons_phone_idx"),
        sa.UniqueConstraint("email_idx", name="uq_persons_email_idx"),
    )
    op.create_index("ix_persons_name", "persons", ["name"])
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("name_en", sa.String(300)),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("parent_id", sa.String(32), sa.ForeignKey("organisations.id", name="fk_organisations_parent_id_organisations")),
        sa.Column("region", sa.String(100)),
        sa.Column("dns_suffixes", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_organisations"),
        sa.UniqueConstraint("uscc", name="uq_organisations_uscc"),
    )
    op.create_index("ix_organisations_name", "organisations", ["name"])
    op.create_table(
        "memberships",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), sa.ForeignKey("persons.id", name="fk_memberships_person_id_persons"), nullable=False),
        sa.Column("org_id", sa.String(32), sa.ForeignKey("organisations.id", name="fk_memberships_org_id_organisations"), nullable=False),
        sa.Column("title", sa.String(200)),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_memberships"),
        sa.UniqueConstraint("person_id", "org_id", name="uq_memberships_person_org"),
    )
    op.create_index("ix_memberships_person_id", "memberships", ["person_id"])
    op.create_index("ix_memberships_org_id", "memberships", ["org_id"])
    op.create_table(
        "operators",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), sa.ForeignKey("persons.id", name="fk_operators_person_id_persons"), nullable=False),
        sa.Column("roles", sa.String(500), nullable=False),
        sa.Column("department_id", sa.String(32), sa.ForeignKey("organisations.id", name="fk_operators_department_id_organisations")),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_operators"),
        sa.UniqueConstraint("person_id", name="uq_operators_person_id"),
    )


def downgrade() -> None:
    for table in ("operators", "memberships", "organisations", "persons"):
        op.drop_table(table)
