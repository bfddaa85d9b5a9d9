"""ca: index on ca_certificates.created_at — the publisher's pre-signing scan reads new certificates by it

Without it the scan for certificates that still lack a pre-signed OCSP response walked every issued
certificate (the status index) once a second: O(certificates) of database work per second.

Revision ID: ca_0003
Revises: ca_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "ca_0003"
down_revision = "ca_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ca_certificates_created_at", "ca_certificates", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_ca_certificates_created_at", table_name="ca_certificates")
