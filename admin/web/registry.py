"""Subscribers: search, registration of persons and organisations at the desk, detail pages, and
the audited "reveal" of full personal data (a permission of its own, ``pii_reveal``)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin import service
from admin.sessions import ConsoleUser
from admin.web.console import ConsoleRoute, console, render
from core import audit
from core.errors import Problem
from core.pii import mask_id_number, mask_phone
from core.runtime import Runtime
from core.security import Role

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

READERS = frozenset({Role.REGISTRATION_OFFICER, Role.APPROVER, Role.CA_ADMIN, Role.AUDITOR})
Reader = Annotated[ConsoleUser, Depends(console(READERS))]
Officer = Annotated[ConsoleUser, Depends(console({Role.REGISTRATION_OFFICER}))]
Revealer = Annotated[ConsoleUser, Depends(console({Role.PII_REVEAL}))]

_SERIAL = re.compile(r"^(0x)?[0-9a-fA-F:]{8,60}$")
_ID = re.compile(r"^\d{17}[\dXx]$")
_PHONE = re.compile(r"^1\d{10}$")
_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
FLASH = {
    "pii_in_url": "Search for full ID numbers and phone numbers with the search form: they are kept out of web addresses.",
    "registered": "Registered.",
    "evidence": "Identity evidence recorded.",
    "existing": "Already registered: this is the existing record.",
}


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


def _search(request: Request, q: str, kind: str) -> Response:
    """One box: a name (substring), an ID number (exact, via the blind index), a masked ID number,
    a phone number, a USCC, or a certificate serial."""
    from ca import service as ca_service
    from identity import service as identity

    rt = _rt(request)
    q = q.strip()[:100]
    persons, orgs, certificate = [], [], None
    with rt.db.read() as db:
        if q and _SERIAL.match(q) and not _ID.match(q):
            try:
                certificate = ca_service.get_certificate(db, q)
            except Problem:
                certificate = None
        if kind in ("all", "person"):
            persons = identity.search_persons(rt, db, query=q, limit=50)
        if kind in ("all", "org"):
            orgs = identity.search_orgs(db, query=q, limit=50)
    # A full ID number or phone typed into the box is not printed back in full (shoulder surfing).
    shown = mask_id_number(q) if _ID.match(q) else (mask_phone(q) if _PHONE.match(q) else q)
    return render(request, "subscribers.html", {"q": shown, "kind": kind, "persons": persons, "orgs": orgs, "certificate": certificate})


def personal_number(q: str) -> bool:
    """A full ID number or mobile number: never part of a URL (access logs, browser history)."""
    q = q.strip()
    return bool(_ID.match(q) or _PHONE.match(q))


@router.get("/subscribers", response_class=HTMLResponse, name="admin_subscribers")
def subscribers(request: Request, user: Reader, q: Annotated[str, Query(max_length=100)] = "", kind: str = "all") -> Response:
    """Names, masked numbers, USCCs and serials may come in the address (links); full ID and phone
    numbers only in the search form's POST body — one in the address is refused, not searched."""
    if personal_number(q):
        context = {"q": "", "kind": kind, "persons": [], "orgs": [], "certificate": None, "flash": FLASH["pii_in_url"], "flash_kind": "error"}
        return render(request, "subscribers.html", context, status=400)
    return _search(request, q, kind)


@router.post("/subscribers", response_class=HTMLResponse, name="admin_subscribers_search")
def subscribers_search(request: Request, user: Reader, q: Annotated[str, Form(max_length=100)] = "", kind: Annotated[str, Form(max_length=8)] = "all") -> Response:
    """The search form (POST, so a full ID number stays out of URLs, logs and history)."""
    return _search(request, q, kind)


# -- persons -------------------------------------------------------------------------------------


@router.get("/persons/new", response_class=HTMLResponse, name="admin_person_new")
def person_form(request: Request, user: Officer) -> Response:
    return render(request, "person_new.html", {"values": {}, "document_types": service.DOCUMENT_TYPES})


@router.post("/persons/new", name="admin_person_register")
def person_register(
    request: Request,
    user: Officer,
    name: Annotated[str, Form(max_length=200)],
    id_number: Annotated[str, Form(max_length=40)],
    phone: Annotated[str, Form(max_length=20)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    document_type: Annotated[str, Form(max_length=40)] = "resident_id_card",
    document_number: Annotated[str, Form(max_length=40)] = "",
    notes: Annotated[str, Form(max_length=2000)] = "",
    org: Annotated[str, Form(max_length=64)] = "",
    title: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Register (or find) a person and record the identity document the officer checked."""
    from identity import service as identity

    rt = _rt(request)
    values = {"name": name, "phone": phone, "email": email, "document_type": document_type, "notes": notes, "org": org, "title": title}
    try:
        with rt.db.transaction() as db:
            person = identity.register_person(rt, db, user.actor, name=name, id_number=id_number, phone=phone or None, email=email or None)
            service.capture_evidence(
                rt,
                db,
                user.actor,
                subject_kind="person",
                subject_id=person.id,
                document_type=document_type,
                number=document_number or id_number,
                notes=notes,
            )
            if org.strip():
                dept = identity.resolve_org(db, org.strip())
                identity.add_membership(rt, db, user.actor, person_id=person.id, org_id=dept.id, title=title or None)
    except Problem as exc:
        return render(request, "person_new.html", {"values": values, "error": exc, "document_types": service.DOCUMENT_TYPES}, status=exc.status)
    return RedirectResponse(f"/admin/persons/{person.id}?done={'registered' if person.created else 'existing'}", status_code=303)


@router.get("/persons/{person_id}", response_class=HTMLResponse, name="admin_person")
def person_detail(request: Request, user: Reader, person_id: str, done: str = "") -> Response:
    from ca import service as ca_service
    from identity import service as identity

    rt = _rt(request)
    with rt.db.read() as db:
        person = identity.get_person(db, person_id[:32])
        memberships = [(m, identity.get_org(db, m.org_id)) for m in identity.memberships_of(db, person.id)]
        certificates = ca_service.certificates_of(db, person_id=person.id)
        requests = service.list_requests(db, subject_id=person.id, limit=100)
        evidence = service.evidence_of(db, person.id)
        history = audit.search(db, target=f"person:{person.id}", limit=100)
        operator = identity.get_operator(db, person.id)
    return render(
        request,
        "person.html",
        {
            "person": person,
            "memberships": memberships,
            "certificates": certificates,
            "requests": requests,
            "evidence": evidence,
            "history": history,
            "operator": operator,
            "flash": FLASH.get(done),
            "document_types": service.DOCUMENT_TYPES,
        },
    )


@router.post("/persons/{person_id}/reveal", response_class=HTMLResponse, name="admin_person_reveal")
def person_reveal(request: Request, user: Revealer, person_id: str, reason: Annotated[str, Form(max_length=300)] = "") -> Response:
    """Show the full ID number and phone once, on a page that is never cached; audited."""
    from identity import service as identity

    rt = _rt(request)
    with rt.db.transaction() as db:
        secrets_ = identity.reveal_person(rt, db, user.actor, user.roles, person_id[:32], reason=reason)
    return render(request, "person_reveal.html", {"secrets": secrets_, "reason": reason})


@router.post("/persons/{person_id}/evidence", name="admin_person_evidence")
def person_evidence(
    request: Request,
    user: Officer,
    person_id: str,
    document_type: Annotated[str, Form(max_length=40)],
    document_number: Annotated[str, Form(max_length=40)],
    notes: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    rt = _rt(request)
    with rt.db.transaction() as db:
        service.capture_evidence(rt, db, user.actor, subject_kind="person", subject_id=person_id[:32], document_type=document_type, number=document_number, notes=notes)
    return RedirectResponse(f"/admin/persons/{person_id[:32]}?done=evidence", status_code=303)


# -- organisations ---------------------------------------------------------------------------------


@router.get("/orgs/new", response_class=HTMLResponse, name="admin_org_new")
def org_form(request: Request, user: Officer) -> Response:
    from identity.service import ORG_TYPES

    return render(request, "org_new.html", {"values": {}, "org_types": ORG_TYPES, "document_types": service.DOCUMENT_TYPES})


@router.post("/orgs/new", name="admin_org_register")
def org_register(
    request: Request,
    user: Officer,
    name: Annotated[str, Form(max_length=300)],
    uscc: Annotated[str, Form(max_length=18)],
    type: Annotated[str, Form(max_length=20)] = "enterprise",
    name_en: Annotated[str, Form(max_length=300)] = "",
    parent: Annotated[str, Form(max_length=64)] = "",
    dns_suffixes: Annotated[str, Form(max_length=2000)] = "",
    document_type: Annotated[str, Form(max_length=40)] = "business_licence",
    document_number: Annotated[str, Form(max_length=40)] = "",
    notes: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    from identity import service as identity
    from identity.service import ORG_TYPES

    rt = _rt(request)
    values = {"name": name, "uscc": uscc, "type": type, "name_en": name_en, "parent": parent, "dns_suffixes": dns_suffixes, "notes": notes}
    try:
        with rt.db.transaction() as db:
            parent_id = identity.resolve_org(db, parent.strip()).id if parent.strip() else None
            org = identity.register_org(
                rt, db, user.actor, name=name, uscc=uscc, type=type, parent_id=parent_id, name_en=name_en or None, dns_suffixes=[s for s in re.split(r"[\s,]+", dns_suffixes) if s]
            )
            service.capture_evidence(
                rt, db, user.actor, subject_kind="org", subject_id=org.id, document_type=document_type, number=document_number or uscc, notes=notes
            )
    except Problem as exc:
        return render(request, "org_new.html", {"values": values, "error": exc, "org_types": ORG_TYPES, "document_types": service.DOCUMENT_TYPES}, status=exc.status)
    return RedirectResponse(f"/admin/orgs/{org.id}?done={'registered' if org.created else 'existing'}", status_code=303)


@router.get("/orgs/{org_id}", response_class=HTMLResponse, name="admin_org")
def org_detail(request: Request, user: Reader, org_id: str, done: str = "") -> Response:
    from ca import service as ca_service
    from identity import service as identity

    rt = _rt(request)
    with rt.db.read() as db:
        org = identity.get_org(db, org_id[:32])
        parent = identity.get_org(db, org.parent_id) if org.parent_id else None
        certificates = ca_service.certificates_of(db, org_id=org.id)
        requests = service.list_requests(db, subject_id=org.id, limit=100)
        evidence = service.evidence_of(db, org.id)
        history = audit.search(db, target=f"org:{org.id}", limit=100)
    return render(
        request,
        "org.html",
        {
            "org": org,
            "parent": parent,
            "certificates": certificates,
            "requests": requests,
            "evidence": evidence,
            "history": history,
            "flash": FLASH.get(done),
        },
    )
