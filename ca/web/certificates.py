"""Certificates API (``/api/v1/certificates``) and the CA certificates at their AIA URL.

Writes need a registration officer / CA administrator or a client holding
``certificates:write``; reads need an operator role or ``certificates:read``. The CA certificates
under ``/ca/<name>.cer`` are public (they are what the AIA caIssuers extension points at).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse

from ca import groupcommit, hierarchy, lint, service
from ca.schemas import CertificateOut, IssueRequest, MaintenanceRequest, RekeyRequest, csr_text_to_bytes
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor, Principal, Role
from core.web import RuntimeDep, require

log = logging.getLogger("eauth.ca")

router = APIRouter()

WRITE = require(roles={Role.REGISTRATION_OFFICER, Role.CA_ADMIN}, scopes={"certificates:write"})
READ = require(
    roles={Role.REGISTRATION_OFFICER, Role.CA_ADMIN, Role.APPROVER, Role.AUDITOR}, scopes={"certificates:read", "certificates:write"}
)
Writer = Annotated[Principal, Depends(WRITE)]
Reader = Annotated[Principal, Depends(READ)]

PKIX_CERT = "application/pkix-cert"  # RFC 2585 §4.1
PKCS7_MIME = "application/pkcs7-mime"  # RFC 2585 §4.2 (certs-only)
PEM_FILE = "application/x-pem-file"


def _out(view: service.CertificateView | service.IssuedCertificate, *, status: str | None = None) -> dict:
    if isinstance(view, service.IssuedCertificate):
        return CertificateOut(
            serial=view.serial,
            issuer=view.issuer,
            profile=view.profile,
            status=status or "issued",
            subject=view.subject,
            not_before=view.not_before,
            not_after=view.not_after,
            sha256=view.sha256,
            replaces_serial=view.replaces_serial,
            pem=view.pem,
        ).model_dump()
    return CertificateOut(**{k: v for k, v in view.as_dict().items() if k in CertificateOut.model_fields}, pem=view.pem).model_dump()


def _actor(principal: Principal) -> Actor:
    return principal.actor


# -- CA certificates (public, read-only) -----------------------------------------------------------


@router.get("/ca/{name}.cer", tags=["ca"], response_class=Response, responses={200: {"content": {PKIX_CERT: {}}}})
def ca_certificate(name: str, rt: RuntimeDep) -> Response:
    """A CA certificate, DER, at the URL issued certificates carry in AIA caIssuers (RFC 5280 §4.2.2.1)."""
    if len(name) > 64:
        raise Problem(Kind.NOT_FOUND, "ca.unknown_ca", "no such certificate authority")
    with rt.db.replica_read() as db:  # public and rarely changing: the read replica serves it
        der = hierarchy.authority_der(db, name)
    return Response(der, media_type=PKIX_CERT, headers={"Cache-Control": "public, max-age=86400", "Content-Disposition": f'attachment; filename="{name}.cer"'})


@router.get("/ca/{name}.pem", tags=["ca"], response_class=Response)
def ca_certificate_pem(name: str, rt: RuntimeDep) -> Response:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if len(name) > 64:
        raise Problem(Kind.NOT_FOUND, "ca.unknown_ca", "no such certificate authority")
    with rt.db.replica_read() as db:
        der = hierarchy.authority_der(db, name)
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    return Response(pem, media_type=PEM_FILE, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/api/v1/ca", tags=["ca"])
def list_authorities(rt: RuntimeDep, principal: Reader) -> list[dict]:
    with rt.db.replica_read() as db:
        return [a.__dict__ for a in hierarchy.list_authorities(db)]


# -- certificates -----------------------------------------------------------------------------------


@router.post("/api/v1/certificates", tags=["certificates"], status_code=201)
def issue(body: IssueRequest, rt: RuntimeDep, principal: Writer) -> JSONResponse:
    """Issue a certificate from a PKCS#10 request; the subject comes from the identity registry."""
    req = service.CertificateRequest(
        _actor(principal), body.profile, body.csr_bytes(), body.subject_id, tuple(body.dns_names or ()), body.ca, body.org_id
    )
    cert = groupcommit.issue(rt, req)  # with whatever else is being issued at this moment (ca.groupcommit)
    return JSONResponse(_out(cert), status_code=201, headers={"Location": f"/api/v1/certificates/{cert.serial}"})


@router.get("/api/v1/certificates", tags=["certificates"])
def expiring(rt: RuntimeDep, principal: Reader, expiring_days: Annotated[int, Query(ge=0, le=3650)] = 30) -> list[dict]:
    """Expiry report: issued certificates whose validity ends within ``expiring_days``."""
    with rt.db.replica_read() as db:  # a report over days: replication lag does not matter
        return [_out(v) | {"pem": None} for v in service.expiring(db, days=expiring_days)]


@router.get("/api/v1/certificates/{serial}", tags=["certificates"])
def show(serial: str, rt: RuntimeDep, principal: Reader) -> dict:
    with rt.db.read() as db:
        view = service.get_certificate(db, serial)
        history = [h.__dict__ for h in service.maintenance_history(db, view.serial)]
    return _out(view) | {"maintenance": history}


@router.get("/api/v1/certificates/{serial}/download", tags=["certificates"], response_class=Response)
def download(
    serial: str, rt: RuntimeDep, principal: Reader, format: Annotated[str, Query(pattern="^(pem|der|p7b)$")] = "pem"
) -> Response:
    """The certificate as PEM, DER, or a PKCS#7 certs-only bundle with its chain."""
    with rt.db.read() as db:
        view, cert = service.get_issued(db, serial)
        if format == "p7b":
            body, media, ext = service.pkcs7_chain(rt, db, view.serial), PKCS7_MIME, "p7b"
        elif format == "der":
            body, media, ext = view.der or b"", PKIX_CERT, "cer"
        else:
            body, media, ext = (view.pem or "").encode(), PEM_FILE, "pem"
    headers = {"Content-Disposition": f'attachment; filename="{view.serial}.{ext}"'}
    if format == "p7b":
        media += "; smime-type=certs-only"
    return Response(body, media_type=media, headers=headers)


@router.post("/api/v1/certificates/{serial}/renew", tags=["certificates"], status_code=201)
def renew(serial: str, body: MaintenanceRequest, rt: RuntimeDep, principal: Writer) -> JSONResponse:
    with rt.db.transaction() as db:
        cert = service.renew(rt, db, _actor(principal), serial, reason=body.reason)
    return JSONResponse(_out(cert), status_code=201)


@router.post("/api/v1/certificates/{serial}/rekey", tags=["certificates"], status_code=201)
def rekey(serial: str, body: RekeyRequest, rt: RuntimeDep, principal: Writer) -> JSONResponse:
    with rt.db.transaction() as db:
        cert = service.rekey(rt, db, _actor(principal), serial, csr=csr_text_to_bytes(body.csr), reason=body.reason)
    return JSONResponse(_out(cert), status_code=201)


@router.post("/api/v1/certificates/{serial}/modify", tags=["certificates"], status_code=201)
def modify(serial: str, body: MaintenanceRequest, rt: RuntimeDep, principal: Writer) -> JSONResponse:
    with rt.db.transaction() as db:
        cert = service.modify(rt, db, _actor(principal), serial, reason=body.reason)
    return JSONResponse(_out(cert), status_code=201)


def setup(rt: Runtime) -> None:
    """Per-process start-up: resolve interrupted issuances, warm the linter and the CA cache."""
    with rt.db.transaction() as db:
        retired = service.resolve_pending(rt, db, Actor.system("ca"))
    if retired:
        log.warning("retired %d serial(s) left pending by an interrupted issuance", len(retired))
    lint.warm()
    try:
        with rt.db.read() as db:
            service.issuing_ca(rt, db)
    except Problem:  # not initialised yet: `eauth init` creates the hierarchy
        pass
