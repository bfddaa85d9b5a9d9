"""Tables of the single sign-on service.

Only ``auth_service`` touches them; other packages call :mod:`auth_service.service`. Every secret
(password, client secret, authorization code, refresh token, session cookie, recovery code, SMS
code) is stored only as a hash; TOTP seeds are encrypted by the PII vault (they must be read back).

Times are ISO 8601 UTC strings with seconds (``2026-11-25T08:00:00+00:00``) as in the rest of the
platform: they compare lexically on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class Credential(Base):
    """A person's login secrets (one row per person)."""

    __tablename__ = "sso_credentials"

    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_set_at: Mapped[str | None] = mapped_column(String(32))
    totp_secret_ct: Mapped[str | None] = mapped_column(Text)  # vault-encrypted base32 seed
    totp_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)  # RFC 6238 §5.2: refuse replays
    updated_at: Mapped[str] = mapped_column(String(32))


class RecoveryCode(Base):
    __tablename__ = "sso_recovery_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    created_at: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[str | None] = mapped_column(String(32))


class Client(Base):
    """A relying party / department system registered by an administrator."""

    __tablename__ = "sso_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(String(100))  # SHA-256 of a 256-bit random secret
    secret_set_at: Mapped[str | None] = mapped_column(String(32))
    redirect_uris: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, matched exactly
    post_logout_redirect_uris: Mapped[str] = mapped_column(Text, default="[]")
    grant_types: Mapped[str] = mapped_column(String(200))  # space separated
    scopes: Mapped[str] = mapped_column(Text)  # space separated
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(500))
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40))
    department_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"))
    jwks: Mapped[str | None] = mapped_column(Text)  # JSON JWK Set for private_key_jwt
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))


class SigningKey(Base):
    """OIDC signing keys (``oidc/<kid>`` in the token). ``active`` signs; ``previous`` stays in the
    JWKS until ``publish_until`` (tokens it signed have expired); then ``retired``."""

    __tablename__ = "sso_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(100), unique=True)
    alg: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(32))
    retired_at: Mapped[str | None] = mapped_column(String(32))
    publish_until: Mapped[str | None] = mapped_column(String(32))


class BrowserSession(Base):
    """A server-side SSO session. The cookie holds a random value; only its hash is stored."""

    __tablename__ = "sso_sessions"
    __table_args__ = (Index("ix_sso_sessions_person_ended", "person_id", "ended_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the OIDC ``sid``
    cookie_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"))
    acr: Mapped[str] = mapped_column(String(8))
    amr: Mapped[str] = mapped_column(String(100))  # space separated RFC 8176 values
    auth_time: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[str] = mapped_column(String(32))
    last_seen_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))  # absolute time-out
    ended_at: Mapped[str | None] = mapped_column(String(32))
    end_reason: Mapped[str | None] = mapped_column(String(40))
    ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(300))


class SessionClient(Base):
    """Relying parties that received tokens within a session (for back-channel logout)."""

    __tablename__ = "sso_session_clients"

    session_id: Mapped[str] = mapped_column(ForeignKey("sso_sessions.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("sso_clients.client_id"), primary_key=True)
    first_at: Mapped[str] = mapped_column(String(32))


class Interaction(Base):
    """A pending authorization request while the user logs in / consents. Bound to the browser
    (hash of its CSRF cookie) so a leaked interaction URL is useless elsewhere."""

    __tablename__ = "sso_interactions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)  # validated authorization request, JSON
    person_id: Mapped[str | None] = mapped_column(String(32))
    amr: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32), index=True)


class Grant(Base):
    """What one code redemption (or one client_credentials client) was granted: a token family."""

    __tablename__ = "sso_grants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("sso_clients.client_id"), index=True)
    person_id: Mapped[str | None] = mapped_column(String(32), index=True)
    session_id: Mapped[str | None] = mapped_column(String(32), index=True)
    scope: Mapped[str] = mapped_column(Text)
    acr: Mapped[str | None] = mapped_column(String(8))
    amr: Mapped[str] = mapped_column(String(100), default="")
    auth_time: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))
    revoked_at: Mapped[str | None] = mapped_column(String(32))
    revoke_reason: Mapped[str | None] = mapped_column(String(40))


class AuthorizationCode(Base):
    __tablename__ = "sso_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(32), unique=True)  # the family its tokens will join
    client_id: Mapped[str] = mapped_column(ForeignKey("sso_clients.client_id"))
    session_id: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[str] = mapped_column(String(32))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    acr: Mapped[str] = mapped_column(String(8))
    amr: Mapped[str] = mapped_column(String(100))
    auth_time: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32), index=True)
    redeemed_at: Mapped[str | None] = mapped_column(String(32))


class RefreshToken(Base):
    __tablename__ = "sso_refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("sso_grants.id"), index=True)
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))
    used_at: Mapped[str | None] = mapped_column(String(32))


class Revocation(Base):
    """Revoked JWT access tokens, by ``jti``, grant (``gid``) or client, until they would expire.
    Rows live only as long as the tokens they revoke, so the table stays small and every process
    re-reads it every second or two: verification stays a local signature check."""

    __tablename__ = "sso_revocations"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)  # "jti:…" | "grant:…" | "client:…" | "sid:…"
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32), index=True)


class Consent(Base):
    __tablename__ = "sso_consents"

    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("sso_clients.client_id"), primary_key=True)
    scopes: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[str] = mapped_column(String(32))


class Throttle(Base):
    """Failed-login counters with exponential back-off, per account and per client address."""

    __tablename__ = "sso_throttle"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)  # "acct:…" | "ip:…" | "sms:…"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))


class SmsCode(Base):
    __tablename__ = "sso_sms_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[str | None] = mapped_column(String(32))


class LogoutDelivery(Base):
    """One back-channel logout token to one RP, retried with back-off; each attempt audited."""

    __tablename__ = "sso_logout_deliveries"
    __table_args__ = (Index("ix_sso_logout_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(32), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(String(500))
    logout_token: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[str] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[str] = mapped_column(String(32))
    delivered_at: Mapped[str | None] = mapped_column(String(32))


class ClientAssertion(Base):
    """``jti`` of private_key_jwt assertions seen, refused if replayed (RFC 7523 §3 item 7)."""

    __tablename__ = "sso_client_assertions"

    jti_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[str] = mapped_column(String(32), index=True)
