"""The registration authority's request workflow: certificate requests, four-eyes approval, identity
evidence captured at the desk.

A request moves ``draft → submitted → approved | rejected → done`` (or ``cancelled`` by its author
before a decision). Every step appends to the request's history and to the audit log in the same
transaction. The CA acts only on an *approved* request: :func:`execute_request` calls ``ca.service``
/ ``ca.revocation`` and records the certificate and maintenance link. Approval and execution are
separate transactions because issuance commits its reserved serial before the HSM signs (Boulder's
order): an execution that fails leaves the request ``approved`` with the error, to be retried.

Four-eyes: whoever created or submitted a request never approves it, nor can anyone approve a
request whose subject is themselves; a profile may need two distinct approvers (seals and CA-level
certificates), enforced by a unique (request, approver) row.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from admin.models import (
    APPROVED,
    CANCELLED,
    DONE,
    DRAFT,
    REJECTED,
    SUBMITTED,
    TYPES,
    Approval,
    CertRequest,
    IdentityEvidence,
    RequestEvent,
)
from core import clock
from core.errors import Kind, Problem, invalid
from core.pii import mask_id_number, mask_text
from core.runtime import Runtime
from core.security import Actor

SUBJECT_KINDS = ("person", "org")
MAINTENANCE_TYPES = ("renewal", "rekey", "modification", "revocation", "suspension", "resumption")
NEEDS_CSR = ("new", "rekey")
SEAL_PROFILE = "seal"
DOCUMENT_TYPES = ("resident_id_card", "passport", "hk_macao_permit", "taiwan_permit", "foreign_permanent_residence", "business_licence", "authorisation_letter")
CTX_EVIDENCE = "admin.evidence.number"
MAX_COMMENT = 2000
EXECUTION_CLAIM_SECONDS = 600


def csr_profiles() -> list[str]:
    """Profiles a subscriber's CSR may be issued under (not the HSM-internal ones)."""
    from ca import profiles

    return [name for name, p in profiles.PROFILES.items() if not p.internal]


def approvals_required(profile: str | None) -> int:
    """Dual control for seals and CA-level certificates (their keys act for an institution or sign
    other certificates); one approver for personal and server certificates."""
    p = (profile or "").lower()
    if p.startswith("seal") or p in {"root", "issuing_ca", "sub_ca", "ca", "ocsp", "tsa", "timestamp"} or p.endswith("_ca"):
        return 2
    return 1


# -- views -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalView:
    approver: str
    approver_name: str
    decision: str
    comment: str
    at: str


@dataclass(frozen=True)
class EventView:
    at: str
    actor: str
    actor_name: str
    event: str
    body: str


@dataclass(frozen=True)
class EvidenceView:
    id: str
    subject_kind: str
    subject_id: str
    document_type: str
    number_masked: str
    checked_by: str
    checked_by_name: str
    checked_at: str
    notes: str
    request_id: str | None


@dataclass(frozen=True)
class RequestView:
    id: str
    type: str
    state: str
    subject_kind: str
    subject_id: str
    subject_name: str
    profile: str | None
    dns_names: tuple[str, ...]
    target_serial: str | None
    reason: str | None
    required_approvals: int
    approvals: int
    created_by: str
    created_by_name: str
    submitted_by: str | None
    submitted_at: str | None
    decided_at: str | None
    executed_at: str | None
    result_serial: str | None
    result_ref: str | None
    last_error: str | None
    has_csr: bool
    created_at: str
    updated_at: str
    seal_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["dns_names"] = list(self.dns_names)
        return d


@dataclass(frozen=True)
class RequestDetail:
    request: RequestView
    csr_pem: str | None
    approvals: tuple[ApprovalView, ...]
    events: tuple[EventView, ...]
    evidence: tuple[EvidenceView, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.request.as_dict(),
            "csr_pem": self.csr_pem,
            "approval_log": [a.__dict__ for a in self.approvals],
            "history": [e.__dict__ for e in self.events],
            "evidence": [e.__dict__ for e in self.evidence],
        }


@dataclass(frozen=True)
class Page:
    items: tuple[Any, ...]
    total: int
    limit: int
    offset: int
    extra: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return clock.now().astimezone(UTC).isoformat(timespec="seconds")


def _new_id() -> str:
    """Time-ordered (nanoseconds, then random): rows sort by creation without a sequence."""
    return f"{time.time_ns():016x}{uuid.uuid4().hex[:16]}"


def _view(r: CertRequest) -> RequestView:
    return RequestView(
        r.id,
        r.type,
        r.state,
        r.subject_kind,
        r.subject_id,
        r.subject_name,
        r.profile,
        tuple(n for n in (r.dns_names or "").split("\n") if n),
        r.target_serial,
        r.reason,
        r.required_approvals,
        r.approvals,
        r.created_by,
        r.created_by_name,
        r.submitted_by,
        r.submitted_at,
        r.decided_at,
        r.executed_at,
        r.result_serial,
        r.result_ref,
        r.last_error,
        bool(r.csr_pem),
        r.created_at,
        r.updated_at,
        json.loads(r.params or "{}").get("seal_name"),
    )


def _evidence_view(e: IdentityEvidence) -> EvidenceView:
    return EvidenceView(
        e.id, e.subject_kind, e.subject_id, e.document_type, e.number_masked, e.checked_by, e.checked_by_name, e.checked_at, e.notes, e.request_id
    )


def _event(db: Session, r: CertRequest, actor: Actor, event: str, body: str = "") -> None:
    db.add(RequestEvent(id=_new_id(), request_id=r.id, at=_now(), actor=actor.ref, actor_name=actor.display or actor.id, event=event, body=body))


def _load(db: Session, request_id: str, *, lock: bool = False) -> CertRequest:
    q = select(CertRequest).where(CertRequest.id == request_id)
    if lock:
        q = q.with_for_update()
    r = db.execute(q).scalar_one_or_none() if isinstance(request_id, str) and len(request_id) <= 32 else None
    if r is None:
        raise Problem(Kind.NOT_FOUND, "admin.request_not_found", f"no request {request_id}")
    return r


def _comment(text: str | None) -> str:
    text = (text or "").strip()
    if len(text) > MAX_COMMENT:
        raise invalid("admin.comment_too_long", f"comments are limited to {MAX_COMMENT} characters", comment="too long")
    return text


# -- subjects and certificates (through their owners' services) -------------------------------------


def _subject(db: Session, kind: str, subject_id: str) -> str:
    """The subject's display name; raises not-found for an unknown subject."""
    from identity import service as identity

    if kind == "person":
        return identity.get_person(db, subject_id).name
    if kind == "org":
        return identity.get_org(db, subject_id).name
    raise invalid("admin.invalid_subject_kind", "subject_kind must be person or org", subject_kind="person or org")


def _certificate(db: Session, serial: str) -> Any:
    from ca import service as ca_service

    return ca_service.get_certificate(db, serial)


def _check_profile(profile: str, subject_kind: str) -> None:
    """The profile exists, takes a CSR, and suits the kind of subject (the CA checks again)."""
    from ca import profiles

    prof = profiles.get_profile(profile)
    if prof.internal:
        raise Problem(Kind.FORBIDDEN, "ca.internal_profile", f"profile {profile} is only issued to keys generated in the platform's HSM")
    wanted = "person" if prof.subject_kind in ("person", "staff") else "org"
    if wanted != subject_kind:
        raise invalid("admin.profile_subject_mismatch", f"profile {profile} is for a {wanted}, not a {subject_kind}", profile="does not suit the subject")


def _check_csr(data: str | bytes) -> str:
    """Validate the CSR now (proof of possession, key strength), so approvers see a sound request;
    the CA checks it again at issuance. Returns the CSR as PEM."""
    from cryptography.hazmat.primitives import serialization

    from ca import csr as csr_mod

    raw = data.encode() if isinstance(data, str) else data
    parsed = csr_mod.parse(raw)
    csr_mod.check_key_strength(parsed.public_key)
    return parsed.csr.public_bytes(serialization.Encoding.PEM).decode()


def _seal_params(name: str | None, image_png: bytes | None, clients: Sequence[str]) -> dict[str, Any]:
    from signing import appearance

    name = (name or "").strip()
    if not 1 <= len(name) <= 60 or any(ch in name for ch in "\n\r\t/\\"):
        raise invalid("admin.invalid_seal_name", "the seal name must be 1–60 characters without slashes or line breaks", seal_name="invalid")
    params: dict[str, Any] = {"seal_name": name, "clients": [c.strip() for c in clients if c.strip()]}
    if image_png:
        params["image_png_b64"] = base64.b64encode(appearance.check_seal_png(image_png)).decode()
    return params


def _clean_dns(names: Sequence[str]) -> list[str]:
    out = []
    for name in names:
        n = name.strip().lower().rstrip(".")
        if not n:
            continue
        if len(n) > 253 or " " in n or "/" in n:
            raise invalid("admin.invalid_dns_name", f"invalid DNS name {name!r}", dns_names="invalid name")
        out.append(n)
    return out


# -- requests --------------------------------------------------------------------------------------


def create_request(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    type: str,
    subject_kind: str | None = None,
    subject_id: str | None = None,
    profile: str | None = None,
    csr: str | bytes | None = None,
    dns_names: Sequence[str] = (),
    target_serial: str | None = None,
    reason: str | None = None,
    comment: str = "",
    submit: bool = True,
    seal_name: str | None = None,
    seal_image_png: bytes | None = None,
    seal_clients: Sequence[str] = (),
) -> RequestView:
    """Open a request (submitted at once unless ``submit=False``, which leaves a draft).

    ``new`` needs a subject, a profile and a CSR — except a department ``seal``, whose key the
    platform generates in its HSM on execution (``seal_name``, optional stamp image and clients).
    Maintenance types name the certificate (``target_serial``); its subject and profile come from
    the CA, never from the caller.
    """
    if type not in TYPES:
        raise invalid("admin.invalid_request_type", f"type must be one of {', '.join(TYPES)}", type="unknown type")
    comment = _comment(comment)
    csr_pem = None
    if type in MAINTENANCE_TYPES:
        if not target_serial:
            raise invalid("admin.serial_required", f"a {type} request names the certificate (target_serial)", target_serial="required")
        cert = _certificate(db, target_serial)
        target_serial = cert.serial
        if cert.subject_person_id:
            subject_kind, subject_id = "person", cert.subject_person_id
        elif cert.subject_org_id:
            subject_kind, subject_id = "org", cert.subject_org_id
        else:
            raise Problem(Kind.CONFLICT, "admin.certificate_without_subject", "this certificate has no registered subject")
        profile = cert.profile
    else:
        target_serial = None
        if not subject_kind or not subject_id:
            raise invalid("admin.subject_required", "a new certificate needs a subject", subject_id="required")
        if not profile:
            raise invalid("admin.profile_required", "a new certificate needs a profile", profile="required")
        if subject_kind not in SUBJECT_KINDS:
            raise invalid("admin.invalid_subject_kind", "subject_kind must be person or org", subject_kind="person or org")
        _check_profile(profile, subject_kind)
    params: dict[str, Any] = {}
    if type == "new" and profile == SEAL_PROFILE:
        params = _seal_params(seal_name, seal_image_png, seal_clients)
    elif type in NEEDS_CSR:
        if not csr:
            raise invalid("admin.csr_required", f"a {type} request needs a CSR", csr="required")
        csr_pem = _check_csr(csr)
    if type == "revocation":
        from ca.revocation import parse_reason

        reason = parse_reason(reason or "unspecified")
    elif reason is not None:
        reason = reason.strip()[:300] or None
    assert subject_kind is not None and subject_id is not None
    subject_name = _subject(db, subject_kind, subject_id)
    now = _now()
    r = CertRequest(
        id=_new_id(),
        type=type,
        state=DRAFT,
        subject_kind=subject_kind,
        subject_id=subject_id,
        subject_name=subject_name,
        profile=profile,
        csr_pem=csr_pem,
        dns_names="\n".join(_clean_dns(dns_names)),
        target_serial=target_serial,
        reason=reason,
        params=json.dumps(params, ensure_ascii=False),
        required_approvals=approvals_required(profile),
        approvals=0,
        created_by=actor.ref,
        created_by_name=actor.display or actor.id,
        created_at=now,
        updated_at=now,
    )
    db.add(r)
    db.flush()
    _event(db, r, actor, "created", comment)
    rt.audit.record(
        db,
        actor=actor,
        action="admin.request.create",
        target=f"request:{r.id}",
        details={
            "type": type,
            "subject": f"{subject_kind}:{subject_id}",
            "profile": profile,
            "serial": target_serial,
            "approvals_required": r.required_approvals,
            **({"seal_name": params["seal_name"]} if "seal_name" in params else {}),
        },
    )
    if submit:
        _submit(rt, db, actor, r)
    return _view(r)


def _submit(rt: Runtime, db: Session, actor: Actor, r: CertRequest) -> None:
    if r.state != DRAFT:
        raise Problem(Kind.CONFLICT, "admin.request_not_draft", f"request is {r.state}, not draft")
    r.state, r.submitted_by, r.submitted_at, r.updated_at = SUBMITTED, actor.ref, _now(), _now()
    _event(db, r, actor, "submitted")
    rt.audit.record(db, actor=actor, action="admin.request.submit", target=f"request:{r.id}", details={"type": r.type})


def submit_request(rt: Runtime, db: Session, actor: Actor, request_id: str) -> RequestView:
    r = _load(db, request_id, lock=True)
    _submit(rt, db, actor, r)
    return _view(r)


def comment_on_request(rt: Runtime, db: Session, actor: Actor, request_id: str, body: str) -> RequestView:
    r = _load(db, request_id)
    body = _comment(body)
    if not body:
        raise invalid("admin.comment_required", "the comment is empty", body="required")
    _event(db, r, actor, "comment", body)
    r.updated_at = _now()
    rt.audit.record(db, actor=actor, action="admin.request.comment", target=f"request:{r.id}", details={"length": len(body)})
    return _view(r)


def _check_four_eyes(r: CertRequest, actor: Actor) -> None:
    if actor.ref in (r.created_by, r.submitted_by):
        raise Problem(Kind.FORBIDDEN, "admin.four_eyes", "you created or submitted this request; another operator must decide it")
    if actor.kind == "operator" and r.subject_kind == "person" and actor.id == r.subject_id:
        raise Problem(Kind.FORBIDDEN, "admin.own_subject", "you cannot decide a request about your own certificate")


def approve_request(rt: Runtime, db: Session, actor: Actor, request_id: str, *, comment: str = "") -> RequestView:
    """Record one approval; the request becomes ``approved`` when enough distinct approvers agree."""
    r = _load(db, request_id, lock=True)
    comment = _comment(comment)
    if r.state != SUBMITTED:
        raise Problem(Kind.CONFLICT, "admin.request_not_submitted", f"request is {r.state}; only submitted requests can be approved")
    _check_four_eyes(r, actor)
    if db.execute(select(Approval.id).where(Approval.request_id == r.id, Approval.approver == actor.ref)).first():
        raise Problem(Kind.CONFLICT, "admin.already_approved", "you have already approved this request; another approver is needed")
    db.add(Approval(id=_new_id(), request_id=r.id, approver=actor.ref, approver_name=actor.display or actor.id, decision="approve", comment=comment, at=_now()))
    try:
        db.flush()
    except IntegrityError as exc:  # a concurrent double-click by the same approver
        raise Problem(Kind.CONFLICT, "admin.already_approved", "you have already approved this request") from exc
    r.approvals += 1
    r.updated_at = _now()
    final = r.approvals >= r.required_approvals
    if final:
        r.state, r.decided_at = APPROVED, _now()
    _event(db, r, actor, "approved", comment)
    rt.audit.record(
        db,
        actor=actor,
        action="admin.request.approve",
        target=f"request:{r.id}",
        details={"approvals": r.approvals, "required": r.required_approvals, "final": final},
    )
    return _view(r)


def reject_request(rt: Runtime, db: Session, actor: Actor, request_id: str, *, comment: str) -> RequestView:
    r = _load(db, request_id, lock=True)
    comment = _comment(comment)
    if not comment:
        raise invalid("admin.reason_required", "say why the request is rejected", comment="required")
    if r.state != SUBMITTED:
        raise Problem(Kind.CONFLICT, "admin.request_not_submitted", f"request is {r.state}; only submitted requests can be rejected")
    _check_four_eyes(r, actor)
    db.add(Approval(id=_new_id(), request_id=r.id, approver=actor.ref, approver_name=actor.display or actor.id, decision="reject", comment=comment, at=_now()))
    r.state, r.decided_at, r.updated_at = REJECTED, _now(), _now()
    _event(db, r, actor, "rejected", comment)
    rt.audit.record(db, actor=actor, action="admin.request.reject", target=f"request:{r.id}", details={"comment": comment})
    return _view(r)


def cancel_request(rt: Runtime, db: Session, actor: Actor, request_id: str) -> RequestView:
    """Withdraw a request before a decision (its author only)."""
    r = _load(db, request_id, lock=True)
    if r.state not in (DRAFT, SUBMITTED):
        raise Problem(Kind.CONFLICT, "admin.request_decided", f"request is {r.state}; it can no longer be cancelled")
    if actor.ref != r.created_by:
        raise Problem(Kind.FORBIDDEN, "admin.not_author", "only the operator who created the request may cancel it")
    r.state, r.updated_at = CANCELLED, _now()
    _event(db, r, actor, "cancelled")
    rt.audit.record(db, actor=actor, action="admin.request.cancel", target=f"request:{r.id}")
    return _view(r)


def execute_request(rt: Runtime, db: Session, actor: Actor, request_id: str) -> RequestView:
    """Carry out an approved request through the CA (``approved → done``)."""
    r = _load(db, request_id, lock=True)
    if r.state != APPROVED:
        raise Problem(Kind.CONFLICT, "admin.request_not_approved", f"request is {r.state}; only approved requests are executed")
    # Claim the request before the CA commits mid-way (issuance makes its reserved serial durable):
    # a second executor then sees the claim instead of issuing twice. A claim left by a process that
    # died is released after EXECUTION_CLAIM_SECONDS.
    if r.executed_at and not r.last_error:
        age = (clock.now() - datetime.fromisoformat(r.executed_at)).total_seconds()
        if age < EXECUTION_CLAIM_SECONDS:
            raise Problem(Kind.CONFLICT, "admin.request_executing", "this request is being carried out; reload in a moment")
    r.executed_at, r.last_error = _now(), None
    db.flush()
    serial, ref = _carry_out(rt, db, actor, r)
    r.state, r.executed_at, r.updated_at = DONE, _now(), _now()
    r.result_serial, r.result_ref, r.last_error = serial, ref, None
    _event(db, r, actor, "done", f"{serial or ''} {ref or ''}".strip())
    rt.audit.record(db, actor=actor, action="admin.request.execute", target=f"request:{r.id}", details={"type": r.type, "serial": serial, "maintenance": ref})
    return _view(r)


def record_execution_failure(rt: Runtime, db: Session, actor: Actor, request_id: str, problem: Problem) -> RequestView:
    r = _load(db, request_id, lock=True)
    r.last_error = f"{problem.code}: {mask_text(problem.detail)}"[:500]
    r.executed_at = None
    r.updated_at = _now()
    _event(db, r, actor, "failed", r.last_error)
    rt.audit.record(db, actor=actor, action="admin.request.execute", target=f"request:{r.id}", outcome="failure", details={"code": problem.code})
    return _view(r)


def approve_and_execute(rt: Runtime, actor: Actor, request_id: str, *, comment: str = "") -> RequestView:
    """The approver's button: record the approval; if it was the last one needed, execute at once.

    Two transactions (see the module docstring). A CA refusal is recorded on the request, which
    stays ``approved`` for a retry, and re-raised so the caller sees the problem.
    """
    with rt.db.transaction() as db:
        view = approve_request(rt, db, actor, request_id, comment=comment)
    if view.state != APPROVED:
        return view
    return run_execution(rt, actor, request_id)


def run_execution(rt: Runtime, actor: Actor, request_id: str) -> RequestView:
    try:
        with rt.db.transaction() as db:
            return execute_request(rt, db, actor, request_id)
    except Problem as exc:
        if exc.code in ("admin.request_not_found", "admin.request_not_approved"):
            raise
        with rt.db.transaction() as db:
            record_execution_failure(rt, db, actor, request_id, exc)
        raise


def _carry_out(rt: Runtime, db: Session, actor: Actor, r: CertRequest) -> tuple[str | None, str | None]:
    """Call the CA. Returns (certificate serial, maintenance link)."""
    from ca import revocation
    from ca import service as ca_service

    why = f"request {r.id}" + (f": {r.reason}" if r.reason else "")
    if r.type == "new" and r.profile == SEAL_PROFILE:
        from signing import service as signing_service

        params = json.loads(r.params or "{}")
        image = base64.b64decode(params["image_png_b64"]) if params.get("image_png_b64") else None
        seal = signing_service.create_seal(
            rt, db, actor, name=params["seal_name"], department=r.subject_id, image_png=image, clients=tuple(params.get("clients", ()))
        )
        return seal.cert_serial, f"seal:{seal.id}"
    if r.type == "new":
        assert r.csr_pem is not None and r.profile is not None
        dns = [n for n in (r.dns_names or "").split("\n") if n]
        issued = ca_service.issue_certificate(rt, db, actor, profile=r.profile, csr=r.csr_pem.encode(), subject_id=r.subject_id, dns_names=dns)
    elif r.type == "renewal":
        issued = ca_service.renew(rt, db, actor, r.target_serial or "", reason=why)
    elif r.type == "rekey":
        assert r.csr_pem is not None
        issued = ca_service.rekey(rt, db, actor, r.target_serial or "", csr=r.csr_pem.encode(), reason=why)
    elif r.type == "modification":
        issued = ca_service.modify(rt, db, actor, r.target_serial or "", reason=why)
    else:
        serial = r.target_serial or ""
        if r.type == "revocation":
            change = revocation.revoke(rt, db, actor, serial=serial, reason=r.reason or "unspecified", comment=why)
        elif r.type == "suspension":
            change = revocation.suspend(rt, db, actor, serial=serial, comment=why)
        else:
            change = revocation.resume(rt, db, actor, serial=serial, comment=why)
        return change.serial, f"status:{change.previous_status}->{change.status}"
    records = [m for m in ca_service.maintenance_history(db, issued.serial) if m.new_serial == issued.serial]
    return issued.serial, (f"maintenance:{records[-1].id}" if records else None)


def get_request(db: Session, request_id: str) -> RequestDetail:
    r = _load(db, request_id)
    approvals = db.execute(select(Approval).where(Approval.request_id == r.id).order_by(Approval.id)).scalars()
    events = db.execute(select(RequestEvent).where(RequestEvent.request_id == r.id).order_by(RequestEvent.id)).scalars()
    evidence = db.execute(
        select(IdentityEvidence)
        .where(or_(IdentityEvidence.request_id == r.id, IdentityEvidence.subject_id == r.subject_id))
        .order_by(IdentityEvidence.checked_at.desc())
    ).scalars()
    return RequestDetail(
        _view(r),
        r.csr_pem,
        tuple(ApprovalView(a.approver, a.approver_name, a.decision, a.comment, a.at) for a in approvals),
        tuple(EventView(e.at, e.actor, e.actor_name, e.event, e.body) for e in events),
        tuple(_evidence_view(e) for e in evidence),
    )


def list_requests(
    db: Session,
    *,
    state: str | None = None,
    type: str | None = None,
    subject_id: str | None = None,
    serial: str | None = None,
    created_by: str | None = None,
    awaiting: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Newest first. ``awaiting=<actor ref>``: submitted requests that actor may still approve."""
    limit = max(1, min(limit, 500))
    offset = max(0, offset)
    q = select(CertRequest)
    if state:
        q = q.where(CertRequest.state == state)
    if type:
        q = q.where(CertRequest.type == type)
    if subject_id:
        q = q.where(CertRequest.subject_id == subject_id)
    if serial:
        s = serial.strip().lower()
        q = q.where(or_(CertRequest.target_serial == s, CertRequest.result_serial == s))
    if created_by:
        q = q.where(CertRequest.created_by == created_by)
    if awaiting:
        q = q.where(
            CertRequest.state == SUBMITTED,
            CertRequest.created_by != awaiting,
            CertRequest.submitted_by != awaiting,
            ~select(Approval.id).where(Approval.request_id == CertRequest.id, Approval.approver == awaiting).exists(),
        )
    total = db.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    rows = db.execute(q.order_by(CertRequest.created_at.desc(), CertRequest.id).limit(limit).offset(offset)).scalars()
    return Page(tuple(_view(r) for r in rows), total, limit, offset)


def request_counts(db: Session) -> dict[str, int]:
    rows = db.execute(select(CertRequest.state, func.count()).group_by(CertRequest.state)).all()
    return {state: n for state, n in rows}


# -- identity evidence -----------------------------------------------------------------------------


def capture_evidence(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    subject_kind: str,
    subject_id: str,
    document_type: str,
    number: str,
    notes: str = "",
    request_id: str | None = None,
) -> EvidenceView:
    """Record that the officer checked an identity document in person (the number only encrypted)."""
    if document_type not in DOCUMENT_TYPES:
        raise invalid("admin.invalid_document_type", f"document_type must be one of {', '.join(DOCUMENT_TYPES)}", document_type="unknown type")
    number = number.strip().upper().replace(" ", "")
    if not (4 <= len(number) <= 40) or not number.isalnum():
        raise invalid("admin.invalid_document_number", "the document number must be 4–40 letters or digits", number="4–40 letters or digits")
    _subject(db, subject_kind, subject_id)
    if request_id is not None:
        _load(db, request_id)
    e = IdentityEvidence(
        id=_new_id(),
        subject_kind=subject_kind,
        subject_id=subject_id,
        document_type=document_type,
        number_ct=rt.vault.encrypt(number, context=CTX_EVIDENCE),
        number_masked=mask_id_number(number),
        checked_by=actor.ref,
        checked_by_name=actor.display or actor.id,
        checked_at=_now(),
        notes=_comment(notes),
        request_id=request_id,
    )
    db.add(e)
    db.flush()
    rt.audit.record(
        db,
        actor=actor,
        action="admin.evidence.capture",
        target=f"{subject_kind}:{subject_id}",
        details={"document_type": document_type, "number": e.number_masked, "request": request_id},
    )
    return _evidence_view(e)


def evidence_of(db: Session, subject_id: str) -> list[EvidenceView]:
    rows = db.execute(select(IdentityEvidence).where(IdentityEvidence.subject_id == subject_id).order_by(IdentityEvidence.checked_at.desc())).scalars()
    return [_evidence_view(e) for e in rows]


# -- operators ---------------------------------------------------------------------------------------


def appoint_operator(
    rt: Runtime, db: Session, actor: Actor, *, actor_person_id: str | None, person_id: str, roles: set[str], department: str = "", active: bool = True
) -> Any:
    """Grant, change or withdraw an operator's roles (console and API alike; audited by identity).
    Nobody changes their own roles; a department administrator needs a department (USCC or id)."""
    from core.security import Role
    from identity import service as identity

    target = identity.get_person(db, person_id[:32])
    if actor_person_id is not None and target.id == actor_person_id:
        raise Problem(Kind.FORBIDDEN, "admin.own_roles", "another CA administrator must change your own roles")
    if not roles and active:
        raise invalid("admin.roles_required", "choose at least one role (or deactivate the operator)", roles="required")
    dept_id = identity.resolve_org(db, department.strip()).id if department.strip() else None
    if Role.DEPARTMENT_ADMIN.value in roles and dept_id is None:
        raise invalid("admin.department_required", "a department administrator needs a department", department="required")
    return identity.set_operator(rt, db, actor, person_id=target.id, roles=roles, department_id=dept_id, active=active)


# -- department staff --------------------------------------------------------------------------------

STAFF_PROFILE = "staff"


def enrol_staff(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    department_id: str,
    name: str,
    id_number: str,
    csr: str | bytes,
    phone: str | None = None,
    title: str | None = None,
    comment: str = "",
) -> RequestView:
    """A department's staff member: registered (or found) in the registry, made a member of the
    department, and a ``staff`` certificate requested for them — submitted for an approver (the
    department administrator vouches; the registration authority still decides)."""
    from identity import service as identity

    dept = identity.get_org(db, department_id)
    if dept.type not in ("government", "institution"):
        raise Problem(Kind.POLICY, "admin.not_a_department", "staff certificates are for government departments and public institutions")
    person = identity.register_person(rt, db, actor, name=name, id_number=id_number, phone=phone or None)
    identity.add_membership(rt, db, actor, person_id=person.id, org_id=dept.id, title=(title or "").strip()[:100] or None)
    note = _comment(comment)
    return create_request(
        rt, db, actor, type="new", subject_kind="person", subject_id=person.id, profile=STAFF_PROFILE, csr=csr,
        comment=(f"staff of {dept.name}" + (f": {note}" if note else ""))[:MAX_COMMENT],
    )
