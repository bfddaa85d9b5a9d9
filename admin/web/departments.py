"""Department administration: seals (created under dual control, image preview, clients,
disable/enable, suspension/revocation through requests) and OIDC clients (register, rotate the
secret — shown once — and disable). A department administrator sees only their department; a CA
administrator sees every department."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin import service
from admin.sessions import ConsoleUser
from admin.web.console import ConsoleRoute, console, render
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Role

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

DeptAdmin = Annotated[ConsoleUser, Depends(console({Role.DEPARTMENT_ADMIN, Role.CA_ADMIN}))]
MAX_IMAGE = 2 * 1024 * 1024
GRANTS = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
FLASH = {
    "requested": "Seal request submitted: two approvers must approve it.",
    "updated": "Saved.",
    "disabled": "Disabled.",
    "enabled": "Enabled.",
    "image": "Stamp image replaced: documents sealed from now on show it.",
    "staff": "Staff member enrolled: the certificate request awaits an approver.",
}


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


def scope_of(user: ConsoleUser) -> str | None:
    """The department a user is confined to (None: every department, for CA administrators)."""
    if user.has_role(Role.CA_ADMIN):
        return None
    if not user.department_id:
        raise Problem(Kind.FORBIDDEN, "admin.no_department", "your operator record names no department")
    return user.department_id


def _check_client(user: ConsoleUser, client) -> None:  # type: ignore[no-untyped-def]
    """A department client this user may manage. The platform's own first-party clients (the
    console itself) are never managed here: disabling one would lock every operator out."""
    if client.first_party:
        raise Problem(Kind.FORBIDDEN, "admin.first_party_client", "the platform's own clients are managed with the eauth command line")
    _check_department(user, client.department_id)


def _check_department(user: ConsoleUser, department_id: str | None) -> None:
    scope = scope_of(user)
    if scope is not None and department_id != scope:
        raise Problem(Kind.FORBIDDEN, "admin.other_department", "this belongs to another department")


# -- seals -----------------------------------------------------------------------------------------


@router.get("/seals", response_class=HTMLResponse, name="admin_seals")
def seals(request: Request, user: DeptAdmin, done: str = "") -> Response:
    from signing import service as signing_service

    rt = _rt(request)
    scope = scope_of(user)
    with rt.db.read() as db:
        rows = signing_service.list_seals(db, department_id=scope)
        pending = [r for r in service.list_requests(db, state="submitted", limit=200).items if r.profile == "seal" and r.type == "new" and (scope is None or r.subject_id == scope)]
    return render(request, "seals.html", {"seals": rows, "pending": pending, "scope": scope, "flash": FLASH.get(done)})


@router.post("/seals", name="admin_seal_request")
def seal_request(
    request: Request,
    user: DeptAdmin,
    name: Annotated[str, Form(max_length=60)],
    department: Annotated[str, Form(max_length=64)] = "",
    clients: Annotated[str, Form(max_length=2000)] = "",
    comment: Annotated[str, Form(max_length=2000)] = "",
    image: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Ask for a new seal. Its HSM key and certificate are made when two approvers agree."""
    from identity import service as identity

    rt = _rt(request)
    png = None
    if image is not None and image.filename:
        png = image.file.read(MAX_IMAGE + 1)
        if len(png) > MAX_IMAGE:
            raise Problem(Kind.TOO_LARGE, "admin.image_too_large", "the seal image is too large")
    with rt.db.transaction() as db:
        scope = scope_of(user)
        org = identity.resolve_org(db, department.strip()) if department.strip() else None
        dept_id = org.id if org else scope
        if dept_id is None:
            raise Problem(Kind.VALIDATION, "admin.department_required", "name the department (USCC or id)")
        _check_department(user, dept_id)
        service.create_request(
            rt,
            db,
            user.actor,
            type="new",
            subject_kind="org",
            subject_id=dept_id,
            profile=service.SEAL_PROFILE,
            seal_name=name,
            seal_image_png=png or None,
            seal_clients=clients.replace(",", " ").split(),
            comment=comment,
        )
    return RedirectResponse("/admin/seals?done=requested", status_code=303)


@router.get("/seals/{seal_id}", response_class=HTMLResponse, name="admin_seal")
def seal_detail(request: Request, user: DeptAdmin, seal_id: str, done: str = "") -> Response:
    from auth_service import service as sso
    from ca import service as ca_service
    from signing import service as signing_service

    rt = _rt(request)
    with rt.db.read() as db:
        seal = signing_service.get_seal(db, seal_id[:32])
        _check_department(user, seal.department_id)
        cert = ca_service.get_certificate(db, seal.cert_serial)
        clients = [c for c in sso.list_clients(db, department_id=scope_of(user), include_disabled=False) if not c.first_party]
    return render(request, "seal.html", {"seal": seal, "cert": cert, "clients": clients, "flash": FLASH.get(done)})


@router.get("/seals/{seal_id}/image", name="admin_seal_image")
def seal_image(request: Request, user: DeptAdmin, seal_id: str) -> Response:
    from signing import service as signing_service

    rt = _rt(request)
    with rt.db.read() as db:
        seal = signing_service.get_seal(db, seal_id[:32])
        _check_department(user, seal.department_id)
        png = signing_service.seal_image(db, seal.id)
    # revalidated on every view: the image may have just been replaced
    etag = '"' + hashlib.sha256(png).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"etag": etag, "cache-control": "private, no-cache"})
    return Response(png, media_type="image/png", headers={"etag": etag, "cache-control": "private, no-cache"})


@router.post("/seals/{seal_id}/image", name="admin_seal_image_replace")
def seal_image_replace(request: Request, user: DeptAdmin, seal_id: str, image: Annotated[UploadFile, File()]) -> Response:
    """Replace the stamp image (a PNG, checked and normalised by the signing service); documents
    sealed from now on show the new one. Audited with both images' hashes."""
    from signing import service as signing_service

    png = image.file.read(MAX_IMAGE + 1)
    if len(png) > MAX_IMAGE:
        raise Problem(Kind.TOO_LARGE, "admin.image_too_large", "the seal image is too large")
    if not png:
        raise Problem(Kind.VALIDATION, "admin.image_required", "choose a PNG image to upload")
    rt = _rt(request)
    with rt.db.transaction() as db:
        seal = signing_service.get_seal(db, seal_id[:32])
        _check_department(user, seal.department_id)
        signing_service.replace_seal_image(rt, db, user.actor, seal_id=seal.id, image_png=png)
    return RedirectResponse(f"/admin/seals/{seal.id}?done=image", status_code=303)


@router.post("/seals/{seal_id}/clients", name="admin_seal_allow_client")
def seal_allow_client(request: Request, user: DeptAdmin, seal_id: str, client_id: Annotated[str, Form(max_length=64)]) -> Response:
    from auth_service import service as sso
    from signing import service as signing_service

    rt = _rt(request)
    with rt.db.transaction() as db:
        seal = signing_service.get_seal(db, seal_id[:32])
        _check_department(user, seal.department_id)
        client = sso.get_client(db, client_id.strip())
        _check_client(user, client)
        signing_service.allow_client(rt, db, user.actor, seal_id=seal.id, client_id=client.client_id)
    return RedirectResponse(f"/admin/seals/{seal.id}?done=updated", status_code=303)


@router.post("/seals/{seal_id}/status", name="admin_seal_status")
def seal_status(request: Request, user: DeptAdmin, seal_id: str, active: Annotated[str, Form(max_length=5)]) -> Response:
    """Disable (or re-enable) the seal's use at once; the certificate is untouched (to suspend or
    revoke the certificate, open a request: seals need two approvers)."""
    from signing import service as signing_service

    rt = _rt(request)
    with rt.db.transaction() as db:
        seal = signing_service.get_seal(db, seal_id[:32])
        _check_department(user, seal.department_id)
        signing_service.set_seal_status(rt, db, user.actor, seal_id=seal.id, active=active == "true")
    return RedirectResponse(f"/admin/seals/{seal.id}?done={'enabled' if active == 'true' else 'disabled'}", status_code=303)


@router.post("/seals/{seal_id}/certificate", name="admin_seal_certificate_request")
def seal_certificate_request(
    request: Request,
    user: DeptAdmin,
    seal_id: str,
    type: Annotated[str, Form(max_length=16)],
    reason: Annotated[str, Form(max_length=300)] = "",
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Suspend, resume or revoke a seal's certificate: a request for two approvers."""
    from signing import service as signing_service

    if type not in ("suspension", "resumption", "revocation"):
        raise Problem(Kind.VALIDATION, "admin.bad_seal_action", "type is suspension, resumption or revocation")
    rt = _rt(request)
    with rt.db.transaction() as db:
        seal = signing_service.get_seal(db, seal_id[:32])
        _check_department(user, seal.department_id)
        view = service.create_request(rt, db, user.actor, type=type, target_serial=seal.cert_serial, reason=reason or None, comment=comment)
    return RedirectResponse(f"/admin/requests/{view.id}?done=created", status_code=303)


# -- staff enrolment -----------------------------------------------------------------------------------


def _department_for(db, user: ConsoleUser, department: str) -> str:  # type: ignore[no-untyped-def]
    """The department a form acts for: a department administrator's own; a CA administrator names one."""
    from identity import service as identity

    scope = scope_of(user)
    dept_id = identity.resolve_org(db, department.strip()).id if department.strip() else scope
    if dept_id is None:
        raise Problem(Kind.VALIDATION, "admin.department_required", "name the department (USCC or id)")
    _check_department(user, dept_id)
    return dept_id


def _staff_page(request: Request, user: ConsoleUser, *, done: str = "", error: Problem | None = None, values: dict[str, str] | None = None) -> Response:
    from admin import bulk
    from ca import service as ca_service
    from identity import service as identity

    rt = _rt(request)
    scope = scope_of(user)
    rows = []
    with rt.db.read() as db:
        dept = identity.get_org(db, scope) if scope else None
        if dept is not None:
            for m in identity.members_of(db, dept.id, limit=200):
                person = identity.get_person(db, m.person_id)
                certs = [c for c in ca_service.certificates_of(db, person_id=person.id) if c.profile == service.STAFF_PROFILE]
                pending = [r for r in service.list_requests(db, subject_id=person.id, state="submitted", limit=20).items if r.profile == service.STAFF_PROFILE]
                rows.append((m, person, certs, pending))
        jobs = bulk.list_jobs(db, department_id=scope) if scope else [j for j in bulk.list_jobs(db, limit=50) if j.department_id]
    context = {"dept": dept, "rows": rows, "jobs": jobs, "scope": scope, "flash": FLASH.get(done), "error": error, "values": values or {}, "columns": bulk.COLUMNS}
    return render(request, "staff.html", context, status=error.status if error else 200)


@router.get("/staff", response_class=HTMLResponse, name="admin_staff")
def staff(request: Request, user: DeptAdmin, done: str = "") -> Response:
    """The department's staff and their staff certificates; enrol one or upload a list."""
    return _staff_page(request, user, done=done)


@router.post("/staff", response_class=HTMLResponse, name="admin_staff_enrol")
def staff_enrol(
    request: Request,
    user: DeptAdmin,
    name: Annotated[str, Form(max_length=200)],
    id_number: Annotated[str, Form(max_length=40)],
    csr: Annotated[str, Form(max_length=32768)],
    phone: Annotated[str, Form(max_length=20)] = "",
    title: Annotated[str, Form(max_length=100)] = "",
    department: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Enrol one staff member of the administrator's own department (a request for an approver)."""
    rt = _rt(request)
    try:
        with rt.db.transaction() as db:
            dept_id = _department_for(db, user, department)
            service.enrol_staff(rt, db, user.actor, department_id=dept_id, name=name, id_number=id_number, phone=phone or None, title=title, csr=csr)
    except Problem as exc:
        if exc.status in (401, 403):
            raise
        return _staff_page(request, user, error=exc, values={"name": name, "phone": phone, "title": title, "csr": csr})
    return RedirectResponse("/admin/staff?done=staff", status_code=303)


@router.post("/staff/bulk", name="admin_staff_bulk")
def staff_bulk(
    request: Request, user: DeptAdmin, file: Annotated[UploadFile, File()], department: Annotated[str, Form(max_length=64)] = ""
) -> Response:
    """Upload the department's staff list (CSV as for bulk enrolment): each row becomes a member of
    the department with a staff certificate request."""
    from admin import bulk

    rt = _rt(request)
    data = file.file.read(bulk.MAX_BYTES + 1)
    with rt.db.transaction() as db:
        dept_id = _department_for(db, user, department)
        job = bulk.create_job(rt, db, user.actor, filename=file.filename or "staff.csv", data=data, profile=service.STAFF_PROFILE, department_id=dept_id)
    bulk.start(rt, user.actor, job.id)
    return RedirectResponse(f"/admin/bulk/{job.id}", status_code=303)


# -- department clients ------------------------------------------------------------------------------


@router.get("/clients", response_class=HTMLResponse, name="admin_clients")
def clients(request: Request, user: DeptAdmin) -> Response:
    from auth_service import service as sso

    rt = _rt(request)
    with rt.db.read() as db:
        rows = [c for c in sso.list_clients(db, department_id=scope_of(user)) if not c.first_party]
    return render(request, "clients.html", {"clients": rows, "grants": GRANTS, "methods": AUTH_METHODS, "values": {}})


def _lines(text: str) -> list[str]:
    return [x for x in text.replace(",", " ").split() if x]


@router.post("/clients", response_class=HTMLResponse, name="admin_client_register")
def client_register(
    request: Request,
    user: DeptAdmin,
    name: Annotated[str, Form(max_length=200)],
    redirect_uris: Annotated[str, Form(max_length=8000)] = "",
    post_logout_redirect_uris: Annotated[str, Form(max_length=8000)] = "",
    backchannel_logout_uri: Annotated[str, Form(max_length=2000)] = "",
    grant_types: Annotated[list[str] | None, Form()] = None,
    scopes: Annotated[str, Form(max_length=2000)] = "openid profile",
    token_endpoint_auth_method: Annotated[str, Form(max_length=40)] = "client_secret_basic",
    department: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Register a department system; its secret is shown on this response only."""
    from auth_service import service as sso
    from identity import service as identity

    rt = _rt(request)
    try:
        with rt.db.transaction() as db:
            scope = scope_of(user)
            dept_id = identity.resolve_org(db, department.strip()).id if department.strip() else scope
            _check_department(user, dept_id)
            view, secret = sso.register_client(
                rt,
                db,
                user.actor,
                name=name,
                redirect_uris=_lines(redirect_uris),
                grant_types=grant_types or ["authorization_code"],
                scopes=_lines(scopes),
                post_logout_redirect_uris=_lines(post_logout_redirect_uris),
                backchannel_logout_uri=backchannel_logout_uri.strip() or None,
                token_endpoint_auth_method=token_endpoint_auth_method,
                department_id=dept_id,
            )
    except Problem as exc:
        with rt.db.read() as db:
            rows = [c for c in sso.list_clients(db, department_id=scope_of(user)) if not c.first_party]
        values = {"name": name, "redirect_uris": redirect_uris, "post_logout_redirect_uris": post_logout_redirect_uris, "backchannel_logout_uri": backchannel_logout_uri, "scopes": scopes}
        return render(request, "clients.html", {"clients": rows, "grants": GRANTS, "methods": AUTH_METHODS, "values": values, "error": exc}, status=exc.status)
    return render(request, "client.html", {"client": view, "secret": secret, "grants": GRANTS})


@router.get("/clients/{client_id}", response_class=HTMLResponse, name="admin_client")
def client_detail(request: Request, user: DeptAdmin, client_id: str) -> Response:
    from auth_service import service as sso

    rt = _rt(request)
    with rt.db.read() as db:
        view = sso.get_client(db, client_id[:64])
    _check_client(user, view)
    return render(request, "client.html", {"client": view, "secret": None})


@router.post("/clients/{client_id}/rotate", response_class=HTMLResponse, name="admin_client_rotate")
def client_rotate(request: Request, user: DeptAdmin, client_id: str) -> Response:
    from auth_service import service as sso

    rt = _rt(request)
    with rt.db.transaction() as db:
        _check_client(user, sso.get_client(db, client_id[:64]))
        view, secret = sso.rotate_secret(rt, db, user.actor, client_id=client_id[:64])
    return render(request, "client.html", {"client": view, "secret": secret})


@router.post("/clients/{client_id}/disable", name="admin_client_disable")
def client_disable(request: Request, user: DeptAdmin, client_id: str) -> Response:
    from auth_service import service as sso

    rt = _rt(request)
    with rt.db.transaction() as db:
        _check_client(user, sso.get_client(db, client_id[:64]))
        sso.disable_client(rt, db, user.actor, client_id=client_id[:64])
    return RedirectResponse(f"/admin/clients/{client_id[:64]}", status_code=303)
