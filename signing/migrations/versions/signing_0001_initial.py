"""signing: seals, seal clients, timestamp units and instances, sealed documents

Revision ID: signing_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "signing_0001"
down_revision = None
branch_labels = ("signing",)
depends_on = ("identity_0001",)


def upgrade() -> None:
    op.create_table(
        "signing_seals",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("department_id", sa.String(32), nullable=False),
        sa.Column("department_name", sa.String(300), nullable=False),
        sa.Column("department_uscc", sa.String(18), nullable=False),
        sa.Column("key_label", sa.String(100), nullable=False),
        sa.Column("cert_serial", sa.String(40), nullable=False),
        sa.Column("cert_der", sa.LargeBinary(), nullable=False),
        sa.Column("image_png", sa.LargeBinary(), nullable=False),
        sa.Column("font_otf", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signing_seals"),
        sa.UniqueConstraint("key_label", name="uq_signing_seals_key_label"),
    )
    op.create_index("ix_signing_seals_department_id", "signing_seals", ["department_id"])
    op.create_table(
        "signing_seal_clients",
        sa.Column("seal_id", sa.String(32), sa.ForeignKey("signing_seals.id", name="fk_signing_seal_clients_seal_id_signing_seals"), nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("seal_id", "client_id", name="pk_signing_seal_clients"),
    )
    op.create_table(
        "signing_tsa_units",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("key_label", sa.String(100), nullable=False),
        sa.Column("cert_serial", sa.String(40), nullable=False),
        sa.Column("cert_der", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_signing_tsa_units"),
        sa.UniqueConstraint("key_label", name="uq_signing_tsa_units_key_label"),
    )
    op.create_table(
        "signing_tsa_instances",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, autoincrement=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signing_tsa_instances"),
    )
    op.create_table(
        "signing_documents",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("seal_id", sa.String(32), sa.ForeignKey("signing_seals.id", name="fk_signing_documents_seal_id_signing_seals"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signing_documents"),
    )
    op.create_index("ix_signing_documents_seal_id", "signing_documents", ["seal_id"])
    op.create_index("ix_signing_documents_sha256", "signing_documents", ["sha256"])


def downgrade() -> None:
    op.drop_table("signing_documents")
    op.drop_table("signing_tsa_instances")
    op.drop_table("signing_tsa_units")
    op.drop_table("signing_seal_clients")
    op.drop_table("signing_seals")
