"""The admin REST API (``/api/v1``): what the console does, for operators' access tokens (auth code
through ``auth_service``) and department automation (client_credentials with scopes).

Same roles as the console pages; operators need acr 2 for writes, as in the console. Personal data
is masked in every response except the audited ``reveal``. Lists paginate (``limit``/``offset``,
the audit log by ``before``) and filter.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from admin import schemas, service
from admin.models import STATES, TYPES
from core import audit
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Principal, Role
from core.web import RuntimeDep, require

router = APIRouter(prefix="/api/v1", tags=["registration"])

STAFF = {Role.REGISTRATION_OFFICER, Role.APPROVER, Role.CA_ADMIN, Role.AUDITOR}
Reader = Annotated[Principal, Depends(require(roles=STAFF, scopes={"registry:read"}))]
Officer = Annotated[Principal, Depends(require(roles={Role.REGISTRATION_OFFICER}, scopes={"registry:write"}, min_acr="2"))]
Approver = Annotated[Principal, Depends(require(roles={Role.APPROVER}, min_acr="2"))]
Participant = Annotated[Principal, Depends(require(roles={Role.REGISTRATION_OFFICER, Role.APPROVER}, min_acr="2"))]
Revealer = Annotated[Principal, Depends(require(roles={Role.PII_REVEAL}, min_acr="2"))]
Auditor = Annotated[Principal, Depends(require(roles={Role.AUDITOR, Role.CA_ADMIN}))]
AuditVerifier = Annotated[Principal, Depends(require(roles={Role.AUDITOR, Role.CA_ADMIN}, min_acr="2"))]

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


def _d(view: Any) -> dict[str, Any]:
    out = dataclasses.asdict(view)
    out.pop("created", None)
    return out


def _page(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


# -- subscribers -------------------------------------------------------------------------------------


def _search_persons(rt: Runtime, q: str, limit: int, offset: int) -> dict[str, Any]:
    from identity import service as identity

    with rt.db.read() as db:
        rows = identity.search_persons(rt, db, query=q, limit=limit + 1, offset=offset)
        total = identity.count_persons(db) if not q.strip() else offset + len(rows)
    return _page([_d(p) for p in rows[:limit]], total, limit, offset)


@router.get("/persons")
def list_persons(rt: RuntimeDep, principal: Reader, q: Annotated[str, Query(max_length=100)] = "", limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Search by name, masked ID number or e-mail; numbers come back masked. A full ID number or
    phone number is refused here (URLs end up in logs): ``POST /api/v1/persons/search``."""
    from admin.web.registry import personal_number

    if personal_number(q):
        raise Problem(
            Kind.VALIDATION, "admin.personal_number_in_url", "search for full ID and phone numbers with POST /api/v1/persons/search (kept out of URLs)",
            fields=[{"name": "q", "reason": "a full ID or phone number"}],
        )
    return _search_persons(rt, q, limit, offset)


@router.post("/persons/search")
def search_persons(body: schemas.SearchIn, rt: RuntimeDep, principal: Reader) -> dict[str, Any]:
    """The same search with the query in the body: for full ID numbers (exact match through the
    blind index) and phone numbers, which never go in a URL."""
    return _search_persons(rt, body.q, body.limit, body.offset)


@router.post("/persons", status_code=201)
def register_person(body: schemas.PersonIn, rt: RuntimeDep, principal: Officer) -> JSONResponse:
    from identity import service as identity

    with rt.db.transaction() as db:
        person = identity.register_person(rt, db, principal.actor, name=body.name, id_number=body.id_number, phone=body.phone, email=body.email)
        if body.evidence is not None:
            service.capture_evidence(
                rt, db, principal.actor, subject_kind="person", subject_id=person.id, document_type=body.evidence.document_type,
                number=body.evidence.document_number, notes=body.evidence.notes,
            )
    return JSONResponse(_d(person) | {"created": person.created}, status_code=201 if person.created else 200, headers={"location": f"/api/v1/persons/{person.id}"})


@router.get("/persons/{person_id}")
def show_person(person_id: str, rt: RuntimeDep, principal: Reader) -> dict[str, Any]:
    from ca import service as ca_service
    from identity import service as identity

    with rt.db.read() as db:
        person = identity.get_person(db, person_id[:32])
        certs = [c.as_dict() for c in ca_service.certificates_of(db, person_id=person.id)]
        evidence = [_d(e) for e in service.evidence_of(db, person.id)]
        requests = [r.as_dict() for r in service.list_requests(db, subject_id=person.id, limit=100).items]
    return _d(person) | {"certificates": certs, "evidence": evidence, "requests": requests}


@router.post("/persons/{person_id}/reveal")
def reveal_person(person_id: str, body: schemas.RevealIn, rt: RuntimeDep, principal: Revealer) -> JSONResponse:
    """The full ID number, phone and e-mail — a permission of its own, always audited."""
    from identity import service as identity

    with rt.db.transaction() as db:
        found = identity.reveal_person(rt, db, principal.actor, principal.roles, person_id[:32], reason=body.reason)
    return JSONResponse(dataclasses.asdict(found), headers={"cache-control": "no-store"})


@router.get("/orgs")
def list_orgs(rt: RuntimeDep, principal: Reader, q: Annotated[str, Query(max_length=100)] = "", limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    from identity import service as identity

    with rt.db.read() as db:
        rows = identity.search_orgs(db, query=q, limit=limit + 1, offset=offset)
        total = identity.count_orgs(db) if not q.strip() else offset + len(rows)
    return _page([_d(o) for o in rows[:limit]], total, limit, offset)


@router.post("/orgs", status_code=201)
def register_org(body: schemas.OrgIn, rt: RuntimeDep, principal: Officer) -> JSONResponse:
    from identity import service as identity

    with rt.db.transaction() as db:
        parent_id = identity.resolve_org(db, body.parent.strip()).id if body.parent and body.parent.strip() else None
        org = identity.register_org(
            rt, db, principal.actor, name=body.name, uscc=body.uscc, type=body.type, parent_id=parent_id, name_en=body.name_en, dns_suffixes=body.dns_suffixes
        )
        if body.evidence is not None:
            service.capture_evidence(
                rt, db, principal.actor, subject_kind="org", subject_id=org.id, document_type=body.evidence.document_type,
                number=body.evidence.document_number, notes=body.evidence.notes,
            )
    return JSONResponse(_d(org) | {"created": org.created}, status_code=201 if org.created else 200, headers={"location": f"/api/v1/orgs/{org.id}"})


@router.get("/orgs/{org_id}")
def show_org(org_id: str, rt: RuntimeDep, principal: Reader) -> dict[str, Any]:
    from ca import service as ca_service
    from identity import service as identity

    with rt.db.read() as db:
        org = identity.get_org(db, org_id[:32])
        certs = [c.as_dict() for c in ca_service.certificates_of(db, org_id=org.id)]
        requests = [r.as_dict() for r in service.list_requests(db, subject_id=org.id, limit=100).items]
    return _d(org) | {"certificates": certs, "requests": requests}


# -- requests ------------------------------------------------------------------------------------------


@router.get("/requests", tags=["requests"])
def list_requests(
    rt: RuntimeDep,
    principal: Reader,
    state: Annotated[str | None, Query(max_length=16)] = None,
    type: Annotated[str | None, Query(max_length=16)] = None,
    subject_id: Annotated[str | None, Query(max_length=32)] = None,
    serial: Annotated[str | None, Query(max_length=64)] = None,
    awaiting_me: bool = False,
    mine: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    if state is not None and state not in STATES:
        raise Problem(Kind.VALIDATION, "admin.invalid_state", f"state is one of {', '.join(STATES)}")
    if type is not None and type not in TYPES:
        raise Problem(Kind.VALIDATION, "admin.invalid_request_type", f"type is one of {', '.join(TYPES)}")
    ref = principal.actor.ref
    with rt.db.read() as db:
        page = service.list_requests(
            db, state=state, type=type, subject_id=subject_id, serial=serial, awaiting=ref if awaiting_me else None, created_by=ref if mine else None, limit=limit, offset=offset
        )
    return _page([r.as_dict() for r in page.items], page.total, page.limit, page.offset)


@router.post("/requests", status_code=201, tags=["requests"])
def create_request(body: schemas.RequestIn, rt: RuntimeDep, principal: Officer) -> JSONResponse:
    with rt.db.transaction() as db:
        view = service.create_request(
            rt,
            db,
            principal.actor,
            type=body.type,
            subject_kind=body.subject_kind,
            subject_id=body.subject_id,
            profile=body.profile,
            csr=body.csr,
            dns_names=body.dns_names,
            target_serial=body.serial,
            reason=body.reason,
            comment=body.comment,
            submit=not body.draft,
            seal_name=body.seal_name,
            seal_clients=body.seal_clients,
        )
    return JSONResponse(view.as_dict(), status_code=201, headers={"location": f"/api/v1/requests/{view.id}"})


@router.get("/requests/{request_id}", tags=["requests"])
def show_request(request_id: str, rt: RuntimeDep, principal: Reader) -> dict[str, Any]:
    with rt.db.read() as db:
        return service.get_request(db, request_id[:32]).as_dict()


@router.post("/requests/{request_id}/approve", tags=["requests"])
def approve(request_id: str, rt: RuntimeDep, principal: Approver, body: schemas.DecisionIn | None = None) -> dict[str, Any]:
    """One approval (four-eyes); the last one needed carries the request out at once."""
    return service.approve_and_execute(rt, principal.actor, request_id[:32], comment=body.comment if body else "").as_dict()


@router.post("/requests/{request_id}/reject", tags=["requests"])
def reject(request_id: str, body: schemas.DecisionIn, rt: RuntimeDep, principal: Approver) -> dict[str, Any]:
    with rt.db.transaction() as db:
        return service.reject_request(rt, db, principal.actor, request_id[:32], comment=body.comment).as_dict()


@router.post("/requests/{request_id}/execute", tags=["requests"])
def execute(request_id: str, rt: RuntimeDep, principal: Approver) -> dict[str, Any]:
    """Retry an approved request whose execution failed."""
    return service.run_execution(rt, principal.actor, request_id[:32]).as_dict()


@router.post("/requests/{request_id}/submit", tags=["requests"])
def submit(request_id: str, rt: RuntimeDep, principal: Officer) -> dict[str, Any]:
    with rt.db.transaction() as db:
        return service.submit_request(rt, db, principal.actor, request_id[:32]).as_dict()


@router.post("/requests/{request_id}/cancel", tags=["requests"])
def cancel(request_id: str, rt: RuntimeDep, principal: Officer) -> dict[str, Any]:
    with rt.db.transaction() as db:
        return service.cancel_request(rt, db, principal.actor, request_id[:32]).as_dict()


@router.post("/requests/{request_id}/comments", tags=["requests"])
def comment(request_id: str, body: schemas.CommentIn, rt: RuntimeDep, principal: Participant) -> dict[str, Any]:
    with rt.db.transaction() as db:
        return service.comment_on_request(rt, db, principal.actor, request_id[:32], body.body).as_dict()


# -- audit -----------------------------------------------------------------------------------------------


@router.get("/audit", tags=["audit"])
def audit_search(
    request: Request,
    rt: RuntimeDep,
    principal: Auditor,
    action: Annotated[str, Query(max_length=100)] = "",
    actor: Annotated[str, Query(max_length=200)] = "",
    target: Annotated[str, Query(max_length=300)] = "",
    since: Annotated[str, Query(max_length=32)] = "",
    until: Annotated[str, Query(max_length=32)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Newest first; the next page is ``before=<next_before>``."""
    from admin.web.audit import filters

    f = filters(action, actor, target, since, until)
    with rt.db.read() as db:
        entries = audit.search(db, **f, limit=limit, before_seq=before)  # type: ignore[arg-type]
    return {"items": [dataclasses.asdict(e) for e in entries], "next_before": entries[-1].seq if len(entries) == limit else None}


@router.get("/audit/{seq}", tags=["audit"])
def audit_entry(seq: Annotated[int, Path(ge=1, le=2**62)], rt: RuntimeDep, principal: Auditor) -> dict[str, Any]:
    with rt.db.read() as db:
        found = audit.search(db, before_seq=seq + 1, limit=1)
    if not found or found[0].seq != seq:
        raise Problem(Kind.NOT_FOUND, "admin.audit_entry_not_found", f"no audit entry {seq}")
    return dataclasses.asdict(found[0])


@router.post("/audit/verify", tags=["audit"])
def audit_verify(request: Request, principal: AuditVerifier) -> dict[str, Any]:
    """Recompute the hash chain and check the HSM-signed checkpoints (the result is audited)."""
    rt: Runtime = request.app.state.runtime
    result = rt.audit.verify(rt.db)
    with rt.db.transaction() as db:
        rt.audit.record(db, actor=principal.actor, action="admin.audit.verify", target="audit", outcome="success" if result.ok else "failure", details=result.as_dict())
    return result.as_dict()


# -- dashboard -------------------------------------------------------------------------------------------

AnyOperator = Annotated[Principal, Depends(require(roles=frozenset(Role)))]


@router.get("/dashboard", tags=["dashboard"])
def dashboard(rt: RuntimeDep, principal: AnyOperator) -> dict[str, Any]:
    """The console dashboard's figures: counts, and per day (30 days, UTC) certificates issued and
    revoked, OCSP responses and verifications (all processes)."""
    from admin.web.dashboard import figures

    f = figures(rt, principal.actor.ref)
    return {"counts": f.counts, "days": [{"day": d, **{k: f.per_day[k].get(d, 0) for k in f.per_day}} for d in f.days]}


# -- department clients ----------------------------------------------------------------------------------

DeptAdmin = Annotated[Principal, Depends(require(roles={Role.DEPARTMENT_ADMIN, Role.CA_ADMIN}, min_acr="2"))]


async def raw_body(request: Request, *, media_type: str, limit: int, code: str, what: str) -> bytes:
    """A raw upload of ``media_type`` (checked first), read in chunks and refused as soon as it
    passes ``limit`` bytes: ``<code>_media_type`` (415) and ``<code>_too_large`` (413) problems."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != media_type:
        raise Problem(Kind.UNSUPPORTED_MEDIA_TYPE, f"{code}_media_type", f"send the {what} as the body, Content-Type: {media_type}")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise Problem(Kind.TOO_LARGE, f"{code}_too_large", f"the {what} is limited to {limit} bytes")
    return bytes(data)


def _department_scope(principal: Principal) -> str | None:
    """The department a caller is confined to (None: every department, for CA administrators)."""
    if principal.has_role(Role.CA_ADMIN):
        return None
    if len(principal.department_ids) != 1:
        raise Problem(Kind.FORBIDDEN, "admin.no_department", "your operator record names no department")
    return next(iter(principal.department_ids))


def _client_in_scope(principal: Principal, department_id: str | None, *, first_party: bool = False) -> None:
    if first_party:  # the console itself: disabling it would lock every operator out
        raise Problem(Kind.FORBIDDEN, "admin.first_party_client", "the platform's own clients are managed with the eauth command line")
    scope = _department_scope(principal)
    if scope is not None and department_id != scope:
        raise Problem(Kind.FORBIDDEN, "admin.other_department", "this belongs to another department")


@router.get("/clients", tags=["clients"])
def list_clients(rt: RuntimeDep, principal: DeptAdmin) -> dict[str, Any]:
    from auth_service import service as sso

    with rt.db.read() as db:
        rows = [c.as_dict() for c in sso.list_clients(db, department_id=_department_scope(principal)) if not c.first_party]
    return _page(rows, len(rows), len(rows), 0)


@router.post("/clients", status_code=201, tags=["clients"])
def register_client(body: schemas.ClientIn, rt: RuntimeDep, principal: DeptAdmin) -> JSONResponse:
    """Register a department system; the secret is in this response only."""
    from auth_service import service as sso
    from identity import service as identity

    with rt.db.transaction() as db:
        scope = _department_scope(principal)
        dept_id = identity.resolve_org(db, body.department.strip()).id if body.department and body.department.strip() else scope
        _client_in_scope(principal, dept_id)
        view, secret = sso.register_client(
            rt, db, principal.actor, name=body.name, redirect_uris=body.redirect_uris, grant_types=body.grant_types, scopes=body.scopes,
            post_logout_redirect_uris=body.post_logout_redirect_uris, backchannel_logout_uri=body.backchannel_logout_uri,
            token_endpoint_auth_method=body.token_endpoint_auth_method, department_id=dept_id, jwks=body.jwks,
        )
    return JSONResponse(view.as_dict() | {"client_secret": secret}, status_code=201, headers={"location": f"/api/v1/clients/{view.client_id}", "cache-control": "no-store"})


@router.get("/clients/{client_id}", tags=["clients"])
def show_client(client_id: str, rt: RuntimeDep, principal: DeptAdmin) -> dict[str, Any]:
    from auth_service import service as sso

    with rt.db.read() as db:
        view = sso.get_client(db, client_id[:64])
    _client_in_scope(principal, view.department_id, first_party=view.first_party)
    return view.as_dict()


@router.post("/clients/{client_id}/secret", tags=["clients"])
def rotate_client_secret(client_id: str, rt: RuntimeDep, principal: DeptAdmin) -> JSONResponse:
    """A new secret (shown once); the old one stops working at once."""
    from auth_service import service as sso

    with rt.db.transaction() as db:
        found = sso.get_client(db, client_id[:64])
        _client_in_scope(principal, found.department_id, first_party=found.first_party)
        view, secret = sso.rotate_secret(rt, db, principal.actor, client_id=client_id[:64])
    return JSONResponse(view.as_dict() | {"client_secret": secret}, headers={"cache-control": "no-store"})


@router.post("/clients/{client_id}/disable", tags=["clients"])
def disable_client(client_id: str, rt: RuntimeDep, principal: DeptAdmin) -> dict[str, Any]:
    from auth_service import service as sso

    with rt.db.transaction() as db:
        found = sso.get_client(db, client_id[:64])
        _client_in_scope(principal, found.department_id, first_party=found.first_party)
        return sso.disable_client(rt, db, principal.actor, client_id=client_id[:64]).as_dict()
