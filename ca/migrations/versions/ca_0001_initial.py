"""ca: authorities, certificates, maintenance records

Revision ID: ca_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ca_0001"
down_revision = None
branch_labels = ("ca",)
depends_on = ("identity_0001",)


def upgrade() -> None:
    op.create_table(
        "ca_authorities",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key_label", sa.String(100), nullable=False),
        sa.Column("der", sa.LargeBinary()),
        sa.Column("csr_der", sa.LargeBinary()),
        sa.Column("parent", sa.String(64), sa.ForeignKey("ca_authorities.name", name="fk_ca_authorities_parent_ca_authorities")),
        sa.Column("is_root", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("serial", sa.String(40)),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("not_before", sa.String(32)),
        sa.Column("not_after", sa.String(32)),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_ca_authorities"),
        sa.UniqueConstraint("key_label", name="uq_ca_authorities_key_label"),
    )
    op.create_table(
        "ca_certificates",
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("issuer", sa.String(64), sa.ForeignKey("ca_authorities.name", name="fk_ca_certificates_issuer_ca_authorities"), nullable=False),
        sa.Column("profile", sa.String(32), nullable=False),
        sa.Column("subject_person_id", sa.String(32)),
        sa.Column("subject_org_id", sa.String(32)),
        sa.Column("subject_dn", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("not_before", sa.String(32), nullable=False),
        sa.Column("not_after", sa.String(32), nullable=False),
        sa.Column("der", sa.LargeBinary()),
        sa.Column("sha256", sa.String(64)),
        sa.Column("spki_sha256", sa.String(64), nullable=False),
        sa.Column("replaces_serial", sa.String(40)),
        sa.Column("maintenance_reason", sa.String(300)),
        sa.Column("failure", sa.String(300)),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("revoked_at", sa.String(32)),
        sa.Column("revocation_reason", sa.String(32)),
        sa.Column("invalidity_date", sa.String(32)),
        sa.Column("revoked_by", sa.String(200)),
        sa.Column("status_changed_at", sa.String(32)),
        sa.PrimaryKeyConstraint("serial", name="pk_ca_certificates"),
        sa.UniqueConstraint("sha256", name="uq_ca_certificates_sha256"),
        sa.CheckConstraint(
            "status IN ('pending', 'issued', 'failed', 'revoked', 'on_hold')", name="ck_ca_certificates_status"
        ),
    )
    op.create_index("ix_ca_certificates_profile", "ca_certificates", ["profile"])
    op.create_index("ix_ca_certificates_subject_person_id", "ca_certificates", ["subject_person_id"])
    op.create_index("ix_ca_certificates_subject_org_id", "ca_certificates", ["subject_org_id"])
    op.create_index("ix_ca_certificates_spki_sha256", "ca_certificates", ["spki_sha256"])
    op.create_index("ix_ca_certificates_replaces_serial", "ca_certificates", ["replaces_serial"])
    op.create_index("ix_ca_certificates_status_not_after", "ca_certificates", ["status", "not_after"])
    op.create_index("ix_ca_certificates_issuer_status", "ca_certificates", ["issuer", "status"])
    op.create_table(
        "ca_maintenance",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("old_serial", sa.String(40)),
        sa.Column("new_serial", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ca_maintenance"),
    )
    op.create_index("ix_ca_maintenance_old_serial", "ca_maintenance", ["old_serial"])
    op.create_index("ix_ca_maintenance_new_serial", "ca_maintenance", ["new_serial"])


def downgrade() -> None:
    for table in ("ca_maintenance", "ca_certificates", "ca_authorities"):
        op.drop_table(table)
