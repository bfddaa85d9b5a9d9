"""Certificate requests in the console: list, new (CSR upload or paste), maintenance actions,
detail with history, and the approver's decisions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin import service
from admin.models import STATES, TYPES
from admin.sessions import ConsoleUser
from admin.web.console import ConsoleRoute, console, render
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Role

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

READERS = frozenset({Role.REGISTRATION_OFFICER, Role.APPROVER, Role.CA_ADMIN, Role.AUDITOR})
Reader = Annotated[ConsoleUser, Depends(console(READERS))]
Officer = Annotated[ConsoleUser, Depends(console({Role.REGISTRATION_OFFICER}))]
Approver = Annotated[ConsoleUser, Depends(console({Role.APPROVER}))]
Participant = Annotated[ConsoleUser, Depends(console({Role.REGISTRATION_OFFICER, Role.APPROVER}))]

MAX_CSR_UPLOAD = 16 * 1024
FLASH = {
    "created": "Request submitted.",
    "draft": "Draft saved.",
    "approved": "Approval recorded.",
    "done": "Approved and carried out.",
    "rejected": "Request rejected.",
    "commented": "Comment added.",
    "cancelled": "Request cancelled.",
    "submitted": "Request submitted.",
}


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


@router.get("/requests", response_class=HTMLResponse, name="admin_requests")
def requests_list(request: Request, user: Reader, state: str = "", type: str = "", awaiting: str = "", mine: str = "", offset: Annotated[int, Query(ge=0, le=10**6)] = 0) -> Response:
    rt = _rt(request)
    with rt.db.read() as db:
        page = service.list_requests(
            db,
            state=state if state in STATES else None,
            type=type if type in TYPES else None,
            awaiting=user.actor.ref if awaiting == "me" else None,
            created_by=user.actor.ref if mine == "1" else None,
            limit=50,
            offset=max(0, offset),
        )
    base = f"/admin/requests?state={state}&type={type}&awaiting={awaiting}&mine={mine}"
    return render(request, "requests.html", {"page": page, "state": state, "type": type, "awaiting": awaiting, "mine": mine, "states": STATES, "types": TYPES, "base": base})


@router.get("/requests/new", response_class=HTMLResponse, name="admin_request_new")
def request_form(request: Request, user: Officer, type: str = "new", subject_kind: str = "person", subject_id: str = "", serial: str = "") -> Response:
    from identity import service as identity

    rt = _rt(request)
    subject = None
    if type not in TYPES:
        type = "new"
    with rt.db.read() as db:
        if subject_id:
            try:
                subject = identity.get_person(db, subject_id[:32]) if subject_kind == "person" else identity.get_org(db, subject_id[:32])
            except Problem:
                subject = None
    return render(
        request,
        "request_new.html",
        {
            "type": type,
            "subject_kind": subject_kind,
            "subject": subject,
            "serial": serial,
            "profiles": service.csr_profiles(),
            "types": TYPES,
            "values": {},
            "document_types": service.DOCUMENT_TYPES,
            "reasons": _reasons(),
        },
    )


def _reasons() -> tuple[str, ...]:
    from ca.revocation import REVOCATION_REASONS

    return REVOCATION_REASONS


@router.post("/requests/new", name="admin_request_create")
def request_create(
    request: Request,
    user: Officer,
    type: Annotated[str, Form(max_length=16)] = "new",
    subject_kind: Annotated[str, Form(max_length=8)] = "person",
    subject_id: Annotated[str, Form(max_length=64)] = "",
    profile: Annotated[str, Form(max_length=32)] = "",
    csr: Annotated[str, Form(max_length=MAX_CSR_UPLOAD * 2)] = "",
    csr_file: Annotated[UploadFile | None, File()] = None,
    dns_names: Annotated[str, Form(max_length=4000)] = "",
    serial: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=300)] = "",
    comment: Annotated[str, Form(max_length=2000)] = "",
    document_type: Annotated[str, Form(max_length=40)] = "",
    document_number: Annotated[str, Form(max_length=40)] = "",
    action: Annotated[str, Form(max_length=10)] = "submit",
) -> Response:
    rt = _rt(request)
    csr_data: str | bytes | None = csr.strip() or None
    if csr_file is not None and csr_file.filename:
        uploaded = csr_file.file.read(MAX_CSR_UPLOAD + 1)
        if len(uploaded) > MAX_CSR_UPLOAD:
            raise Problem(Kind.TOO_LARGE, "admin.csr_too_large", f"a CSR file is at most {MAX_CSR_UPLOAD} bytes")
        if uploaded:
            csr_data = uploaded
    values = {"profile": profile, "csr": csr, "dns_names": dns_names, "reason": reason, "comment": comment}
    try:
        with rt.db.transaction() as db:
            view = service.create_request(
                rt,
                db,
                user.actor,
                type=type,
                subject_kind=subject_kind or None,
                subject_id=subject_id.strip() or None,
                profile=profile or None,
                csr=csr_data,
                dns_names=dns_names.replace(",", " ").split(),
                target_serial=serial.strip() or None,
                reason=reason or None,
                comment=comment,
                submit=action != "draft",
            )
            if document_type and document_number.strip():
                service.capture_evidence(
                    rt, db, user.actor, subject_kind=view.subject_kind, subject_id=view.subject_id, document_type=document_type, number=document_number, request_id=view.id
                )
    except Problem as exc:
        from identity import service as identity

        subject = None
        with rt.db.read() as db:
            try:
                if subject_id:
                    subject = identity.get_person(db, subject_id[:32]) if subject_kind == "person" else identity.get_org(db, subject_id[:32])
            except Problem:
                subject = None
        ctx = {
            "type": type if type in TYPES else "new",
            "subject_kind": subject_kind,
            "subject": subject,
            "serial": serial,
            "profiles": service.csr_profiles(),
            "types": TYPES,
            "values": values,
            "error": exc,
            "document_types": service.DOCUMENT_TYPES,
            "reasons": _reasons(),
        }
        return render(request, "request_new.html", ctx, status=exc.status)
    return RedirectResponse(f"/admin/requests/{view.id}?done={'draft' if view.state == 'draft' else 'created'}", status_code=303)


@router.get("/requests/{request_id}", response_class=HTMLResponse, name="admin_request")
def request_detail(request: Request, user: Reader, request_id: str, done: str = "") -> Response:
    rt = _rt(request)
    with rt.db.read() as db:
        detail = service.get_request(db, request_id[:32])
    r = detail.request
    approved_by_me = any(a.approver == user.actor.ref for a in detail.approvals)
    own = user.actor.ref in (r.created_by, r.submitted_by)
    csr_info = _csr_summary(detail.csr_pem) if detail.csr_pem else None
    return render(
        request,
        "request.html",
        {
            "detail": detail,
            "r": r,
            "own": own,
            "approved_by_me": approved_by_me,
            "can_decide": user.has_role(Role.APPROVER) and r.state == "submitted" and not own and not approved_by_me,
            "csr_info": csr_info,
            "flash": FLASH.get(done),
        },
    )


def _csr_summary(pem: str) -> dict[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    csr = x509.load_pem_x509_csr(pem.encode())
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = f"EC {key.curve.name}"
    elif isinstance(key, rsa.RSAPublicKey):
        alg = f"RSA {key.key_size}"
    else:
        alg = type(key).__name__
    return {"subject": csr.subject.rfc4514_string() or "—", "key": alg, "signature": "valid" if csr.is_signature_valid else "invalid"}


@router.post("/requests/{request_id}/approve", name="admin_request_approve")
def request_approve(request: Request, user: Approver, request_id: str, comment: Annotated[str, Form(max_length=2000)] = "") -> Response:
    rt = _rt(request)
    view = service.approve_and_execute(rt, user.actor, request_id[:32], comment=comment)
    return RedirectResponse(f"/admin/requests/{view.id}?done={'done' if view.state == 'done' else 'approved'}", status_code=303)


@router.post("/requests/{request_id}/reject", name="admin_request_reject")
def request_reject(request: Request, user: Approver, request_id: str, comment: Annotated[str, Form(max_length=2000)] = "") -> Response:
    rt = _rt(request)
    with rt.db.transaction() as db:
        view = service.reject_request(rt, db, user.actor, request_id[:32], comment=comment)
    return RedirectResponse(f"/admin/requests/{view.id}?done=rejected", status_code=303)


@router.post("/requests/{request_id}/execute", name="admin_request_execute")
def request_execute(request: Request, user: Approver, request_id: str) -> Response:
    """Retry carrying out an approved request whose first attempt failed."""
    rt = _rt(request)
    view = service.run_execution(rt, user.actor, request_id[:32])
    return RedirectResponse(f"/admin/requests/{view.id}?done=done", status_code=303)


@router.post("/requests/{request_id}/comment", name="admin_request_comment")
def request_comment(request: Request, user: Participant, request_id: str, body: Annotated[str, Form(max_length=2000)] = "") -> Response:
    rt = _rt(request)
    with rt.db.transaction() as db:
        view = service.comment_on_request(rt, db, user.actor, request_id[:32], body)
    return RedirectResponse(f"/admin/requests/{view.id}?done=commented", status_code=303)


@router.post("/requests/{request_id}/submit", name="admin_request_submit")
def request_submit(request: Request, user: Officer, request_id: str) -> Response:
    rt = _rt(request)
    with rt.db.transaction() as db:
        view = service.submit_request(rt, db, user.actor, request_id[:32])
    return RedirectResponse(f"/admin/requests/{view.id}?done=submitted", status_code=303)


@router.post("/requests/{request_id}/cancel", name="admin_request_cancel")
def request_cancel(request: Request, user: Officer, request_id: str) -> Response:
    rt = _rt(request)
    with rt.db.transaction() as db:
        view = service.cancel_request(rt, db, user.actor, request_id[:32])
    return RedirectResponse(f"/admin/requests/{view.id}?done=cancelled", status_code=303)
