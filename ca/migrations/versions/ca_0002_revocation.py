"""ca: revocation — CRL state and published CRLs, OCSP responders and pre-signed responses

Revision ID: ca_0002
Revises: ca_0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ca_0002"
down_revision = "ca_0001"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _issuer_fk(table: str) -> sa.Column:
    return sa.Column("issuer", sa.String(64), sa.ForeignKey("ca_authorities.name", name=f"fk_{table}_issuer_ca_authorities"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ca_revocation_state",
        _issuer_fk("ca_revocation_state"),
        sa.Column("crl_number", _BIG, nullable=False),
        sa.Column("changes", _BIG, nullable=False),
        sa.Column("published_changes", _BIG, nullable=False),
        sa.Column("changed_at", sa.String(32)),
        sa.Column("published_at", sa.String(32)),
        sa.Column("next_update", sa.String(32)),
        sa.PrimaryKeyConstraint("issuer", name="pk_ca_revocation_state"),
    )
    op.create_table(
        "ca_crls",
        sa.Column("id", sa.String(100), nullable=False),
        _issuer_fk("ca_crls"),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("number", _BIG, nullable=False),
        sa.Column("this_update", sa.String(32), nullable=False),
        sa.Column("next_update", sa.String(32), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ca_crls"),
    )
    op.create_index("ix_ca_crls_issuer_scope_number", "ca_crls", ["issuer", "scope", "number"])
    op.create_table(
        "ca_ocsp_responders",
        _issuer_fk("ca_ocsp_responders"),
        sa.Column("key_label", sa.String(100), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("not_before", sa.String(32), nullable=False),
        sa.Column("not_after", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("issuer", name="pk_ca_ocsp_responders"),
    )
    op.create_table(
        "ca_ocsp_responses",
        _issuer_fk("ca_ocsp_responses"),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("responder", sa.String(40), nullable=False),
        sa.Column("this_update", sa.String(32), nullable=False),
        sa.Column("next_update", sa.String(32), nullable=False),
        sa.Column("seq", _BIG, nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "serial", name="pk_ca_ocsp_responses"),
    )
    op.create_index("ix_ca_ocsp_responses_this_update", "ca_ocsp_responses", ["this_update"])
    op.create_index("ix_ca_ocsp_responses_seq", "ca_ocsp_responses", ["seq"])
    sequence = op.create_table(
        "ca_ocsp_sequence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", _BIG, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ca_ocsp_sequence"),
    )
    op.bulk_insert(sequence, [{"id": 1, "value": 0}])


def downgrade() -> None:
    for table in ("ca_ocsp_sequence", "ca_ocsp_responses", "ca_ocsp_responders", "ca_crls", "ca_revocation_state"):
        op.drop_table(table)
