"""Tables of the service-centre console: certificate requests and their approvals and history,
identity evidence captured at the desk, console sessions, bulk enrolment jobs.

Times are ISO 8601 UTC strings, as elsewhere in the platform. Subjects (persons, organisations) and
certificates are referenced by id/serial only: their tables belong to ``identity`` and ``ca``.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

# Request types and states (see admin.service for the transitions).
TYPES = ("new", "renewal", "rekey", "modification", "revocation", "suspension", "resumption")
DRAFT, SUBMITTED, APPROVED, REJECTED, DONE, CANCELLED = "draft", "submitted", "approved", "rejected", "done", "cancelled"
STATES = (DRAFT, SUBMITTED, APPROVED, REJECTED, DONE, CANCELLED)


class CertRequest(Base):
    """A certificate request (new certificate or a maintenance action on an existing one)."""

    __tablename__ = "admin_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    subject_kind: Mapped[str] = mapped_column(String(8))  # person | org
    subject_id: Mapped[str] = mapped_column(String(32), index=True)
    subject_name: Mapped[str] = mapped_column(String(300))
    profile: Mapped[str | None] = mapped_column(String(32))
    csr_pem: Mapped[str | None] = mapped_column(Text)
    dns_names: Mapped[str] = mapped_column(Text, default="")  # newline-separated
    target_serial: Mapped[str | None] = mapped_column(String(40), index=True)  # maintenance actions
    reason: Mapped[str | None] = mapped_column(String(300))  # revocation reason / why
    params: Mapped[str] = mapped_column(Text, default="{}")  # type-specific JSON (a seal's name, image, clients)
    required_approvals: Mapped[int] = mapped_column(Integer)
    approvals: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(200), index=True)
    created_by_name: Mapped[str] = mapped_column(String(200))
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    submitted_at: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[str | None] = mapped_column(String(32))
    executed_at: Mapped[str | None] = mapped_column(String(32))
    result_serial: Mapped[str | None] = mapped_column(String(40), index=True)  # certificate produced/affected
    result_ref: Mapped[str | None] = mapped_column(String(200))  # CA maintenance record link
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[str] = mapped_column(String(32), index=True)
    updated_at: Mapped[str] = mapped_column(String(32))


class Approval(Base):
    """One approver's decision. One row per (request, approver): nobody counts twice."""

    __tablename__ = "admin_approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver", name="uq_admin_approvals_request_approver"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("admin_requests.id"), index=True)
    approver: Mapped[str] = mapped_column(String(200))
    approver_name: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(8))  # approve | reject
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[str] = mapped_column(String(32))


class RequestEvent(Base):
    """The request's history as the console shows it: state changes and comments."""

    __tablename__ = "admin_request_events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("admin_requests.id"), index=True)
    at: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    actor_name: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(16))  # created | submitted | comment | approved | rejected | done | failed | cancelled
    body: Mapped[str] = mapped_column(Text, default="")


class IdentityEvidence(Base):
    """An identity document checked at the desk. The number is stored only encrypted (rt.vault)."""

    __tablename__ = "admin_identity_evidence"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[str] = mapped_column(String(32), index=True)
    document_type: Mapped[str] = mapped_column(String(32))
    number_ct: Mapped[str] = mapped_column(Text)
    number_masked: Mapped[str] = mapped_column(String(64))
    checked_by: Mapped[str] = mapped_column(String(200))
    checked_by_name: Mapped[str] = mapped_column(String(200))
    checked_at: Mapped[str] = mapped_column(String(32))
    notes: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str | None] = mapped_column(ForeignKey("admin_requests.id"), index=True)


class ConsoleSession(Base):
    """A signed-in operator's console session. The cookie holds a random id; only its hash is stored."""

    __tablename__ = "admin_console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    display: Mapped[str] = mapped_column(String(200))
    csrf_token: Mapped[str] = mapped_column(String(64))
    acr: Mapped[str] = mapped_column(String(16))
    sso_sid: Mapped[str | None] = mapped_column(String(128), index=True)
    id_token: Mapped[str | None] = mapped_column(Text)  # id_token_hint for RP-initiated logout
    created_at: Mapped[str] = mapped_column(String(32))
    last_seen_at: Mapped[str] = mapped_column(String(32))
    expires_at: Mapped[str] = mapped_column(String(32), index=True)


class LoginState(Base):
    """A pending OIDC authorisation (state, nonce, PKCE verifier), bound to the browser that began it."""

    __tablename__ = "admin_login_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    return_to: Mapped[str] = mapped_column(String(500))
    expires_at: Mapped[str] = mapped_column(String(32), index=True)


class ConsoleClient(Base):
    """The console's own registration as an OIDC client of auth_service (one row)."""

    __tablename__ = "admin_console_client"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100))
    secret_ct: Mapped[str | None] = mapped_column(Text)  # vault-encrypted client secret
    redirect_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[str] = mapped_column(String(32))


class BulkJob(Base):
    """A bulk enrolment upload processed in the background; the page polls its progress."""

    __tablename__ = "admin_bulk_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_by_name: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))  # queued | running | finished | failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    payload_ct: Mapped[str] = mapped_column(Text, default="")  # the uploaded rows (JSON, vault-encrypted: ID numbers), cleared when done
    results: Mapped[str] = mapped_column(Text, default="[]")  # JSON list per row: request id or error code
    created_at: Mapped[str] = mapped_column(String(32))
    finished_at: Mapped[str | None] = mapped_column(String(32))


class BootstrapAdmin(Base):
    """The first administrator made by ``eauth init`` with one-time credentials. Until
    ``enrolled_at`` is set the console lets them do one thing: enrol their own authenticator app
    and choose a new password (which retires the one-time ones)."""

    __tablename__ = "admin_bootstrap"

    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[str] = mapped_column(String(32))
    enrolled_at: Mapped[str | None] = mapped_column(String(32))
