"""admin: certificate requests, approvals, history, identity evidence, console sessions, bulk jobs

Revision ID: admin_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "admin_0001"
down_revision = None
branch_labels = ("admin",)
depends_on = ("identity_0001",)


def upgrade() -> None:
    op.create_table(
        "admin_requests",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("subject_kind", sa.String(8), nullable=False),
        sa.Column("subject_id", sa.String(32), nullable=False),
        sa.Column("subject_name", sa.String(300), nullable=False),
        sa.Column("profile", sa.String(32)),
        sa.Column("csr_pem", sa.Text()),
        sa.Column("dns_names", sa.Text(), nullable=False, server_default=""),
        sa.Column("target_serial", sa.String(40)),
        sa.Column("reason", sa.String(300)),
        sa.Column("params", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.Column("approvals", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_by_name", sa.String(200), nullable=False),
        sa.Column("submitted_by", sa.String(200)),
        sa.Column("submitted_at", sa.String(32)),
        sa.Column("decided_at", sa.String(32)),
        sa.Column("executed_at", sa.String(32)),
        sa.Column("result_serial", sa.String(40)),
        sa.Column("result_ref", sa.String(200)),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_requests"),
    )
    for column in ("type", "state", "subject_id", "target_serial", "created_by", "result_serial", "created_at"):
        op.create_index(f"ix_admin_requests_{column}", "admin_requests", [column])
    op.create_table(
        "admin_approvals",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(32), sa.ForeignKey("admin_requests.id", name="fk_admin_approvals_request_id_admin_requests"), nullable=False),
        sa.Column("approver", sa.String(200), nullable=False),
        sa.Column("approver_name", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False, server_default=""),
        sa.Column("at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_approvals"),
        sa.UniqueConstraint("request_id", "approver", name="uq_admin_approvals_request_approver"),
    )
    op.create_index("ix_admin_approvals_request_id", "admin_approvals", ["request_id"])
    op.create_table(
        "admin_request_events",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(32), sa.ForeignKey("admin_requests.id", name="fk_admin_request_events_request_id_admin_requests"), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_admin_request_events"),
    )
    op.create_index("ix_admin_request_events_request_id", "admin_request_events", ["request_id"])
    op.create_table(
        "admin_identity_evidence",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("subject_kind", sa.String(8), nullable=False),
        sa.Column("subject_id", sa.String(32), nullable=False),
        sa.Column("document_type", sa.String(32), nullable=False),
        sa.Column("number_ct", sa.Text(), nullable=False),
        sa.Column("number_masked", sa.String(64), nullable=False),
        sa.Column("checked_by", sa.String(200), nullable=False),
        sa.Column("checked_by_name", sa.String(200), nullable=False),
        sa.Column("checked_at", sa.String(32), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False, server_default=""),
        sa.Column("request_id", sa.String(32), sa.ForeignKey("admin_requests.id", name="fk_admin_identity_evidence_request_id_admin_requests")),
        sa.PrimaryKeyConstraint("id", name="pk_admin_identity_evidence"),
    )
    op.create_index("ix_admin_identity_evidence_subject_id", "admin_identity_evidence", ["subject_id"])
    op.create_index("ix_admin_identity_evidence_request_id", "admin_identity_evidence", ["request_id"])
    op.create_table(
        "admin_console_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("display", sa.String(200), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("acr", sa.String(16), nullable=False),
        sa.Column("sso_sid", sa.String(128)),
        sa.Column("id_token", sa.Text()),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("last_seen_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_admin_console_sessions"),
    )
    op.create_index("ix_admin_console_sessions_person_id", "admin_console_sessions", ["person_id"])
    op.create_index("ix_admin_console_sessions_sso_sid", "admin_console_sessions", ["sso_sid"])
    op.create_index("ix_admin_console_sessions_expires_at", "admin_console_sessions", ["expires_at"])
    op.create_table(
        "admin_login_states",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("return_to", sa.String(500), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name="pk_admin_login_states"),
    )
    op.create_index("ix_admin_login_states_expires_at", "admin_login_states", ["expires_at"])
    op.create_table(
        "admin_console_client",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("secret_ct", sa.Text()),
        sa.Column("redirect_uri", sa.String(500), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_console_client"),
    )
    op.create_table(
        "admin_bulk_jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_by_name", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("processed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("payload_ct", sa.Text(), nullable=False, server_default=""),
        sa.Column("results", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32)),
        sa.PrimaryKeyConstraint("id", name="pk_admin_bulk_jobs"),
    )


def downgrade() -> None:
    for table in (
        "admin_bulk_jobs",
        "admin_console_client",
        "admin_login_states",
        "admin_console_sessions",
        "admin_identity_evidence",
        "admin_request_events",
        "admin_approvals",
        "admin_requests",
    ):
        op.drop_table(table)
