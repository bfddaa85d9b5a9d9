"""Certificate login: TLS client authentication at a reverse proxy, certificate in ``Client-Cert``.

RFC 9440 §2: the proxy that terminated TLS passes the client certificate as a Structured Field
byte sequence (``:BASE64(DER):``). nginx has no native way to produce that form, so its
``$ssl_client_escaped_cert`` (URL-encoded PEM) is accepted as well. Either is believed only when
the TCP peer is one of ``EAUTH_TRUSTED_PROXIES`` (§6.2: the header is trivially forged otherwise);
anything else is refused outright.

Then, independently of whatever the proxy checked: the certificate must be one our CA issued
(signature by its issuing CA, serial and fingerprint on record), within its validity period,
with the clientAuth extended key usage, and its status good at this moment (revocation is read
from the CA's status records, the data its OCSP responder signs). The person is the certificate
record's subject in the identity registry — never a name parsed from the certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from ipaddress import ip_address, ip_network
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID
from fastapi import Request

from core import clock
from core.errors import Problem
from core.runtime import Runtime
from core.security import Actor

MAX_HEADER = 16 * 1024


class CertificateRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def from_trusted_proxy(rt: Runtime, request: Request) -> bool:
    peer = request.client.host if request.client else ""
    try:
        address = ip_address(peer)
    except ValueError:
        return False
    return any(address in ip_network(n, strict=False) for n in rt.settings.trusted_proxies)


def parse_client_cert(value: str) -> bytes:
    """DER bytes from an RFC 9440 ``:base64:`` value or an nginx URL-escaped PEM."""
    value = value.strip()
    if len(value) > MAX_HEADER:
        raise CertificateRejected("certificate header too large")
    try:
        if value.startswith(":") and value.endswith(":") and len(value) > 2:
            return base64.b64decode(value[1:-1], validate=True)
        text = unquote(value) if "%" in value else value
        if "-----BEGIN CERTIFICATE-----" in text:
            body = text.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
            return base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateRejected("certificate header is not valid base64") from None
    raise CertificateRejected("certificate header is neither RFC 9440 nor PEM")


def person_for_certificate(rt: Runtime, der: bytes) -> str:
    """The person a certificate from our CA belongs to, after chain, validity and status checks."""
    from ca import service as ca_service

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise CertificateRejected("not an X.509 certificate") from None
    serial = format(cert.serial_number, "x")
    with rt.db.read() as db:
        try:
            record = ca_service.get_certificate(db, serial)
        except Problem:
            raise CertificateRejected("not issued by this platform") from None
        if record.sha256 != hashlib.sha256(der).hexdigest():
            raise CertificateRejected("not issued by this platform")
        try:
            issuer = ca_service.ca_chain(rt, db, record.issuer)[0]
        except Problem:
            raise CertificateRejected("issuing CA unavailable") from None
        status = _status(db, record.issuer, cert.serial_number, record.status)
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        raise CertificateRejected("signature does not verify against our issuing CA") from None
    now = clock.now()
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateRejected("certificate expired or not yet valid")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateRejected("certificate is not for client authentication") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise CertificateRejected("certificate is not for client authentication")
    if status != "good":
        raise CertificateRejected(f"certificate is {status}")
    if not record.subject_person_id:
        raise CertificateRejected("certificate does not belong to a person")
    return record.subject_person_id


def _status(db: object, issuer: str, serial: int, recorded: str) -> str:
    """Revocation status from the CA's status records (what its OCSP responder signs)."""
    try:
        from ca import ocsp

        return ocsp.status_of(db, issuer, serial).status  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - older CA package without the responder module
        return {"issued": "good", "revoked": "revoked", "on_hold": "on_hold"}.get(recorded, "unknown")


def authenticate(rt: Runtime, request: Request, *, ip: str) -> str:
    """Certificate login; failures are audited and raised as :class:`CertificateRejected`."""
    from auth_service.login import record_failure

    header = request.headers.get("client-cert")
    try:
        if not header:
            raise CertificateRejected("no certificate was presented")
        if not from_trusted_proxy(rt, request):
            raise CertificateRejected("certificate header from an untrusted address")
        return person_for_certificate(rt, parse_client_cert(header))
    except CertificateRejected as exc:
        record_failure(rt, Actor.anonymous(ip), keys={f"ip:{ip}": 20}, target="certificate", method="cert", reason=exc.reason)
        raise
