"""Platform administration for CA administrators: operators and their roles, the CA hierarchy and
CRL publication. (Key ceremonies and new issuing CAs stay on the command line, where the HSM is.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin import ca_overview, service
from admin.sessions import ConsoleUser
from admin.web.console import ConsoleRoute, console, render
from core.runtime import Runtime
from core.security import Role

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

CaAdmin = Annotated[ConsoleUser, Depends(console({Role.CA_ADMIN}))]
CaReader = Annotated[ConsoleUser, Depends(console({Role.CA_ADMIN, Role.AUDITOR}))]
FLASH = {"saved": "Saved.", "published": "CRLs published."}


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


# -- operators ---------------------------------------------------------------------------------------


@router.get("/operators", response_class=HTMLResponse, name="admin_operators")
def operators(request: Request, user: CaAdmin, done: str = "") -> Response:
    from identity import service as identity

    rt = _rt(request)
    with rt.db.read() as db:
        rows = []
        for op in identity.list_operators(db):
            person = identity.get_person(db, op.person_id)
            dept = identity.get_org(db, op.department_id) if op.department_id else None
            rows.append((op, person, dept))
    rows.sort(key=lambda r: (not r[0].active, r[1].name))
    return render(request, "operators.html", {"rows": rows, "roles": [r.value for r in Role], "flash": FLASH.get(done)})


@router.post("/operators", name="admin_operator_set")
def operator_set(
    request: Request,
    user: CaAdmin,
    person: Annotated[str, Form(max_length=64)],
    roles: Annotated[list[str] | None, Form()] = None,
    department: Annotated[str, Form(max_length=64)] = "",
    active: Annotated[str, Form(max_length=5)] = "true",
) -> Response:
    """Grant or change an operator's roles (a person registered at the desk: id or ID number)."""
    from identity import service as identity

    rt = _rt(request)
    ref = person.strip()
    with rt.db.transaction() as db:
        found = identity.find_person_by_id_number(rt, db, ref) if len(ref) == 18 else None
        target = found or identity.get_person(db, ref[:32])
        service.appoint_operator(
            rt, db, user.actor, actor_person_id=user.person_id, person_id=target.id, roles=set(roles or []), department=department, active=active == "true"
        )
    return RedirectResponse("/admin/operators?done=saved", status_code=303)


# -- CA hierarchy and CRLs -------------------------------------------------------------------------------


@router.get("/authorities", response_class=HTMLResponse, name="admin_authorities")
def authorities(request: Request, user: CaReader, done: str = "") -> Response:
    """The CA hierarchy (keys, fingerprints, validity, latest CRL, publication), the OCSP
    responders' and timestamp units' certificates and keys."""
    rt = _rt(request)
    with rt.db.read() as db:
        rows = ca_overview.authorities(rt, db)
        keys = ca_overview.responders_and_tsa(rt, db)
    return render(request, "authorities.html", {"rows": rows, "keys": keys, "flash": FLASH.get(done)})


@router.get("/profiles", response_class=HTMLResponse, name="admin_profiles")
def profiles(request: Request, user: CaReader) -> Response:
    """Each certificate profile's rules, read-only (profiles are code, reviewed like code)."""
    return render(request, "profiles.html", {"profiles": ca_overview.profiles()})


@router.post("/authorities/{name}/crl", name="admin_publish_crl")
def publish_crl(request: Request, user: CaAdmin, name: str) -> Response:
    """Publish the CA's CRLs now (they are also published on every change and on schedule)."""
    from ca import crl

    rt = _rt(request)
    with rt.db.transaction() as db:
        crl.publish_crls(rt, db, user.actor, name[:64], trigger="console")
    return RedirectResponse("/admin/authorities?done=published", status_code=303)
