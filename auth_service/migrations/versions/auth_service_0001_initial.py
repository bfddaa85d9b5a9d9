"""auth_service: clients, credentials, sessions, codes, grants, refresh tokens, signing keys, logout

Revision ID: auth_service_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "auth_service_0001"
down_revision = None
branch_labels = ("auth_service",)
depends_on = ("identity_0001",)


def upgrade() -> None:
    op.create_table(
        "sso_client_assertions",
        sa.Column("jti_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("jti_hash", name="pk_sso_client_assertions"),
    )
    op.create_index("ix_sso_client_assertions_expires_at", "sso_client_assertions", ["expires_at"])
    op.create_table(
        "sso_interactions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("person_id", sa.String(32)),
        sa.Column("amr", sa.String(100), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_sso_interactions"),
    )
    op.create_index("ix_sso_interactions_expires_at", "sso_interactions", ["expires_at"])
    op.create_table(
        "sso_logout_deliveries",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("uri", sa.String(500), nullable=False),
        sa.Column("logout_token", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.String(32), nullable=False),
        sa.Column("last_error", sa.String(300)),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("delivered_at", sa.String(32)),
        sa.PrimaryKeyConstraint("id", name="pk_sso_logout_deliveries"),
    )
    op.create_index("ix_sso_logout_deliveries_session_id", "sso_logout_deliveries", ["session_id"])
    op.create_index("ix_sso_logout_deliveries_due", "sso_logout_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "sso_revocations",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_sso_revocations"),
    )
    op.create_index("ix_sso_revocations_expires_at", "sso_revocations", ["expires_at"])
    op.create_table(
        "sso_signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("alg", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("retired_at", sa.String(32)),
        sa.Column("publish_until", sa.String(32)),
        sa.PrimaryKeyConstraint("kid", name="pk_sso_signing_keys"),
        sa.UniqueConstraint("label", name="uq_sso_signing_keys_label"),
    )
    op.create_table(
        "sso_throttle",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.String(32)),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_sso_throttle"),
    )
    op.create_table(
        "sso_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(100)),
        sa.Column("secret_set_at", sa.String(32)),
        sa.Column("redirect_uris", sa.Text(), nullable=False),
        sa.Column("post_logout_redirect_uris", sa.Text(), nullable=False),
        sa.Column("grant_types", sa.String(200), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("backchannel_logout_uri", sa.String(500)),
        sa.Column("first_party", sa.Boolean(), nullable=False),
        sa.Column("token_endpoint_auth_method", sa.String(40), nullable=False),
        sa.Column("department_id", sa.String(32), sa.ForeignKey("organisations.id", name="fk_sso_clients_department_id_organisations")),
        sa.Column("jwks", sa.Text()),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_sso_clients"),
    )
    op.create_table(
        "sso_credentials",
        sa.Column("person_id", sa.String(32), sa.ForeignKey("persons.id", name="fk_sso_credentials_person_id_persons"), nullable=False),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("password_set_at", sa.String(32)),
        sa.Column("totp_secret_ct", sa.Text()),
        sa.Column("totp_confirmed", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.Integer()),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name="pk_sso_credentials"),
    )
    op.create_table(
        "sso_recovery_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(32), sa.ForeignKey("persons.id", name="fk_sso_recovery_codes_person_id_persons"), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("used_at", sa.String(32)),
        sa.PrimaryKeyConstraint("code_hash", name="pk_sso_recovery_codes"),
    )
    op.create_index("ix_sso_recovery_codes_person_id", "sso_recovery_codes", ["person_id"])
    op.create_table(
        "sso_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("cookie_hash", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(32), sa.ForeignKey("persons.id", name="fk_sso_sessions_person_id_persons"), nullable=False),
        sa.Column("acr", sa.String(8), nullable=False),
        sa.Column("amr", sa.String(100), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("last_seen_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("ended_at", sa.String(32)),
        sa.Column("end_reason", sa.String(40)),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sso_sessions"),
        sa.UniqueConstraint("cookie_hash", name="uq_sso_sessions_cookie_hash"),
    )
    op.create_index("ix_sso_sessions_person_ended", "sso_sessions", ["person_id", "ended_at"])
    op.create_table(
        "sso_sms_codes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), sa.ForeignKey("persons.id", name="fk_sso_sms_codes_person_id_persons"), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.String(32)),
        sa.PrimaryKeyConstraint("id", name="pk_sso_sms_codes"),
    )
    op.create_index("ix_sso_sms_codes_person_id", "sso_sms_codes", ["person_id"])
    op.create_table(
        "sso_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("sso_clients.client_id", name="fk_sso_codes_client_id_sso_clients"), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(32), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.String(255)),
        sa.Column("code_challenge", sa.String(128)),
        sa.Column("acr", sa.String(8), nullable=False),
        sa.Column("amr", sa.String(100), nullable=False),
        sa.Column("auth_time", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("redeemed_at", sa.String(32)),
        sa.PrimaryKeyConstraint("code_hash", name="pk_sso_codes"),
        sa.UniqueConstraint("grant_id", name="uq_sso_codes_grant_id"),
    )
    op.create_index("ix_sso_codes_expires_at", "sso_codes", ["expires_at"])
    op.create_table(
        "sso_consents",
        sa.Column("person_id", sa.String(32), sa.ForeignKey("persons.id", name="fk_sso_consents_person_id_persons"), nullable=False),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("sso_clients.client_id", name="fk_sso_consents_client_id_sso_clients"), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("granted_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("person_id", "client_id", name="pk_sso_consents"),
    )
    op.create_table(
        "sso_grants",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("sso_clients.client_id", name="fk_sso_grants_client_id_sso_clients"), nullable=False),
        sa.Column("person_id", sa.String(32)),
        sa.Column("session_id", sa.String(32)),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("acr", sa.String(8)),
        sa.Column("amr", sa.String(100), nullable=False),
        sa.Column("auth_time", sa.Integer()),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("revoked_at", sa.String(32)),
        sa.Column("revoke_reason", sa.String(40)),
        sa.PrimaryKeyConstraint("id", name="pk_sso_grants"),
    )
    op.create_index("ix_sso_grants_client_id", "sso_grants", ["client_id"])
    op.create_index("ix_sso_grants_person_id", "sso_grants", ["person_id"])
    op.create_index("ix_sso_grants_session_id", "sso_grants", ["session_id"])
    op.create_table(
        "sso_session_clients",
        sa.Column("session_id", sa.String(32), sa.ForeignKey("sso_sessions.id", name="fk_sso_session_clients_session_id_sso_sessions"), nullable=False),
        sa.Column("client_id", sa.String(64), sa.ForeignKey("sso_clients.client_id", name="fk_sso_session_clients_client_id_sso_clients"), nullable=False),
        sa.Column("first_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "client_id", name="pk_sso_session_clients"),
    )
    op.create_table(
        "sso_refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("grant_id", sa.String(32), sa.ForeignKey("sso_grants.id", name="fk_sso_refresh_tokens_grant_id_sso_grants"), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("used_at", sa.String(32)),
        sa.PrimaryKeyConstraint("token_hash", name="pk_sso_refresh_tokens"),
    )
    op.create_index("ix_sso_refresh_tokens_grant_id", "sso_refresh_tokens", ["grant_id"])


def downgrade() -> None:
    for table in ("sso_refresh_tokens", "sso_session_clients", "sso_grants", "sso_consents", "sso_codes", "sso_sms_codes", "sso_sessions", "sso_recovery_codes", "sso_credentials", "sso_clients", "sso_throttle", "sso_signing_keys", "sso_revocations", "sso_logout_deliveries", "sso_interactions", "sso_client_assertions"):
        op.drop_table(table)
