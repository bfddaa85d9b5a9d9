"""Certificates in the console: look-up, decoded detail with chain and status, downloads
(PEM, DER, PKCS#7 with chain), the expiring-soon list, and bulk enrolment with progress."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from admin import bulk
from admin.sessions import ConsoleUser
from admin.web.console import ConsoleRoute, console, render
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Role

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

READERS = frozenset({Role.REGISTRATION_OFFICER, Role.APPROVER, Role.CA_ADMIN, Role.AUDITOR, Role.DEPARTMENT_ADMIN})
Reader = Annotated[ConsoleUser, Depends(console(READERS))]
Officer = Annotated[ConsoleUser, Depends(console({Role.REGISTRATION_OFFICER}))]
BulkReader = Annotated[ConsoleUser, Depends(console({Role.REGISTRATION_OFFICER, Role.APPROVER}))]
JobReader = Annotated[ConsoleUser, Depends(console({Role.REGISTRATION_OFFICER, Role.APPROVER, Role.DEPARTMENT_ADMIN, Role.CA_ADMIN}))]


def _visible_job(user: ConsoleUser, job: bulk.JobView) -> None:
    """Officers and approvers see every job; department administrators their department's staff lists."""
    from admin.web.departments import scope_of

    if user.has_any(Role.REGISTRATION_OFFICER, Role.APPROVER):
        return
    scope = scope_of(user)
    if scope is not None and job.department_id != scope:
        raise Problem(Kind.FORBIDDEN, "admin.other_department", "this belongs to another department")
    if scope is None and job.department_id is None:
        raise Problem(Kind.FORBIDDEN, "auth.insufficient_role", "requires one of: approver, registration_officer")
Approver = Annotated[ConsoleUser, Depends(console({Role.APPROVER}))]


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


# Attribute types RFC 4514 has no short name for, written as profiles use them (not as OIDs).
_NAMES = {x509.NameOID.SERIAL_NUMBER: "serialNumber", x509.NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier"}


def _key_description(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name} ({key.key_size} bits)"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size} bits"
    return type(key).__name__


def decode(cert: x509.Certificate) -> dict[str, Any]:
    """The fields an operator checks, as text (a pure function of the certificate)."""
    out: dict[str, Any] = {
        "subject": cert.subject.rfc4514_string(_NAMES),
        "issuer": cert.issuer.rfc4514_string(_NAMES),
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "key": _key_description(cert.public_key()),
        "signature_algorithm": cert.signature_algorithm_oid._name,
        "sha256": hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
        "extensions": [],
        "ocsp": [],
        "ca_issuers": [],
        "crl": [],
    }
    for ext in cert.extensions:
        value = ext.value
        name = ext.oid._name if ext.oid._name != "Unknown OID" else ext.oid.dotted_string
        if isinstance(value, x509.SubjectAlternativeName):
            text = ", ".join(str(v.value) for v in value)
        elif isinstance(value, x509.KeyUsage):
            text = ", ".join(
                k
                for k in ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
                if getattr(value, k)
            )
        elif isinstance(value, x509.ExtendedKeyUsage):
            text = ", ".join(o._name if o._name != "Unknown OID" else o.dotted_string for o in value)
        elif isinstance(value, x509.BasicConstraints):
            text = f"CA={value.ca}" + (f", pathlen={value.path_length}" if value.path_length is not None else "")
        elif isinstance(value, x509.CertificatePolicies):
            text = ", ".join(p.policy_identifier.dotted_string for p in value)
        elif isinstance(value, x509.AuthorityInformationAccess):
            for d in value:
                target = out["ocsp"] if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP else out["ca_issuers"]
                target.append(str(d.access_location.value))
            text = "; ".join(f"{d.access_method._name}: {d.access_location.value}" for d in value)
        elif isinstance(value, x509.CRLDistributionPoints):
            for dp in value:
                out["crl"].extend(str(n.value) for n in dp.full_name or [])
            text = ", ".join(out["crl"])
        elif isinstance(value, (x509.SubjectKeyIdentifier,)):
            text = value.digest.hex(":")
        elif isinstance(value, x509.AuthorityKeyIdentifier):
            text = (value.key_identifier or b"").hex(":")
        else:
            text = "…"
        out["extensions"].append({"name": name, "critical": ext.critical, "value": text})
    return out


@router.get("/certificates", response_class=HTMLResponse, name="admin_certificates")
def certificates(request: Request, user: Reader, serial: str = "") -> Response:
    from ca import service as ca_service

    rt = _rt(request)
    if serial.strip():
        with rt.db.read() as db:
            view = ca_service.get_certificate(db, serial.strip()[:64])
        return RedirectResponse(f"/admin/certificates/{view.serial}", status_code=303)
    with rt.db.read() as db:
        recent = ca_service.certificates_of(db, limit=50)
    return render(request, "certificates.html", {"certs": recent})


@router.get("/certificates/{serial}", response_class=HTMLResponse, name="admin_certificate")
def certificate_detail(request: Request, user: Reader, serial: str) -> Response:
    from ca import service as ca_service

    from admin import service

    rt = _rt(request)
    with rt.db.read() as db:
        view = ca_service.get_certificate(db, serial[:64])
        decoded = decode(x509.load_der_x509_certificate(view.der)) if view.der else None
        chain = [decode(c) for c in ca_service.ca_chain(rt, db, view.issuer)] if view.der else []
        history = ca_service.maintenance_history(db, view.serial)
        requests = service.list_requests(db, serial=view.serial, limit=50)
    return render(request, "certificate.html", {"c": view, "d": decoded, "chain": chain, "history": history, "requests": requests})


@router.get("/certificates/{serial}/download", name="admin_certificate_download")
def certificate_download(request: Request, user: Reader, serial: str, format: str = "pem") -> Response:
    from ca import service as ca_service

    rt = _rt(request)
    with rt.db.read() as db:
        view, cert = ca_service.get_issued(db, serial[:64])
        if format == "pem":
            body, ctype, ext = cert.public_bytes(serialization.Encoding.PEM), "application/x-pem-file", "pem"
        elif format == "der":
            body, ctype, ext = cert.public_bytes(serialization.Encoding.DER), "application/pkix-cert", "cer"
        elif format == "p7b":
            body, ctype, ext = ca_service.pkcs7_chain(rt, db, view.serial), "application/pkcs7-mime", "p7b"
        elif format == "chain":
            chain = ca_service.ca_chain(rt, db, view.issuer)
            body = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [cert, *chain])
            ctype, ext = "application/x-pem-file", "chain.pem"
        else:
            raise Problem(Kind.INVALID_INPUT, "admin.bad_format", "format is pem, der, p7b or chain")
    return Response(body, media_type=ctype, headers={"content-disposition": f'attachment; filename="{view.serial}.{ext}"'})


@router.get("/expiring", response_class=HTMLResponse, name="admin_expiring")
def expiring(request: Request, user: Reader, days: Annotated[int, Query(ge=0, le=3650)] = 30) -> Response:
    from ca import service as ca_service

    rt = _rt(request)
    days = max(1, min(days, 3650))
    with rt.db.read() as db:
        certs = ca_service.expiring(db, days=days)
    return render(request, "expiring.html", {"certs": certs, "days": days})


# -- bulk enrolment --------------------------------------------------------------------------------


@router.get("/bulk", response_class=HTMLResponse, name="admin_bulk")
def bulk_page(request: Request, user: BulkReader) -> Response:
    from admin.service import csr_profiles

    rt = _rt(request)
    with rt.db.read() as db:
        jobs = bulk.list_jobs(db)
    return render(request, "bulk.html", {"jobs": jobs, "profiles": csr_profiles(), "columns": bulk.COLUMNS})


@router.post("/bulk", name="admin_bulk_upload")
def bulk_upload(request: Request, user: Officer, file: Annotated[UploadFile, File()], profile: Annotated[str, Form(max_length=32)] = "citizen") -> Response:
    rt = _rt(request)
    data = file.file.read(bulk.MAX_BYTES + 1)
    with rt.db.transaction() as db:
        job = bulk.create_job(rt, db, user.actor, filename=file.filename or "upload.csv", data=data, profile=profile)
    bulk.start(rt, user.actor, job.id)
    return RedirectResponse(f"/admin/bulk/{job.id}", status_code=303)


@router.get("/bulk/{job_id}", response_class=HTMLResponse, name="admin_bulk_job")
def bulk_job(request: Request, user: JobReader, job_id: str) -> Response:
    rt = _rt(request)
    with rt.db.read() as db:
        job = bulk.get_job(db, job_id[:32])
    _visible_job(user, job)
    return render(request, "bulk_job.html", {"job": job})


@router.get("/bulk/{job_id}/progress", name="admin_bulk_progress")
def bulk_progress(request: Request, user: JobReader, job_id: str) -> Response:
    rt = _rt(request)
    with rt.db.read() as db:
        job = bulk.get_job(db, job_id[:32])
    _visible_job(user, job)
    return JSONResponse({"state": job.state, "total": job.total, "processed": job.processed, "failed": job.failed}, headers={"cache-control": "no-store"})


@router.post("/bulk/{job_id}/approve", name="admin_bulk_approve")
def bulk_approve(request: Request, user: Approver, job_id: str) -> Response:
    """Approve every request of a bulk job that this approver may approve (four-eyes per request)."""
    rt = _rt(request)
    bulk.approve_all(rt, user.actor, job_id[:32])
    return RedirectResponse(f"/admin/bulk/{job_id[:32]}", status_code=303)
