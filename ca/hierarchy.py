"""The CA hierarchy: the root, the issuing CAs, their HSM keys and certificates.

Only this package asks ``hsm`` for a CA key (Boulder: only the CA component holds a signer). Other
packages reach a CA through :func:`issuing_ca` (the revocation module signs CRLs and OCSP
responder certificates with it) or through :mod:`ca.service`.

Ceremonies (root creation, issuing-CA creation, import of an externally signed issuing CA) are
each one audited transaction recording key labels, public-key fingerprints and certificate hashes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from ca import lint, profiles
from ca.models import CertificateAuthority
from core import clock
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor
from hsm.keys import KeySpec, public_key_fingerprint

ROOT = "root"
ROOT_VALIDITY = timedelta(days=20 * 365)
ISSUING_VALIDITY = timedelta(days=10 * 365)
ROOT_KEY_SPEC = "ec-p384"
_CACHE = "ca.authorities"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def key_label(name: str) -> str:
    return f"ca/{name}"


def new_serial() -> int:
    """≥ 64 bits of CSPRNG output (CA/B BR §7.1), positive, 16 octets: 126 random bits under a
    fixed top bit so every serial has 32 hex digits and needs no sign octet (RFC 5280 §4.1.2.2)."""
    return secrets.randbits(126) | (1 << 126)


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def signature_hash(key: Any) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def spki_sha256(public_key: Any) -> str:
    return hashlib.sha256(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


@dataclass(frozen=True)
class Authority:
    """A CA with its certificate and HSM key (the key object signs inside the token)."""

    name: str
    key_label: str
    certificate: x509.Certificate
    key: Any  # HsmEcPrivateKey | HsmRsaPrivateKey
    parent: str | None
    is_root: bool
    chain: tuple[x509.Certificate, ...]  # this CA first, then up to the root

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class AuthorityView:
    name: str
    key_label: str
    parent: str | None
    is_root: bool
    active: bool
    subject: str
    serial: str | None
    sha256: str | None
    spki_sha256: str
    not_before: str | None
    not_after: str | None
    awaiting_signature: bool


def _view(row: CertificateAuthority) -> AuthorityView:
    return AuthorityView(
        row.name, row.key_label, row.parent, row.is_root, row.active, row.subject, row.serial, row.sha256, row.spki_sha256, row.not_before, row.not_after, row.der is None
    )


def ca_subject(name: str, *, root: bool) -> x509.Name:
    cn = "eAuth Root CA" if root else f"eAuth {name.replace('-', ' ').title()} CA"
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eAuth"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_builder(
    *, subject: x509.Name, issuer: x509.Name, public_key: Any, issuer_public_key: Any, validity: timedelta, path_length: int | None, parent: str | None, public_url: str
) -> x509.CertificateBuilder:
    now = clock.now().replace(microsecond=0)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(new_serial())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        # pkilint wants the AKI even in the self-signed root (RFC 5280 §4.2.1.1 makes it optional there)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
    )
    if parent is not None:
        b = (
            b.add_extension(x509.CertificatePolicies([x509.PolicyInformation(x509.oid.CertificatePoliciesOID.ANY_POLICY, None)]), critical=False)
            .add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(profiles.crl_url(public_url, parent))], None, None, None)]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(profiles.ca_issuers_url(public_url, parent)))]
                ),
                critical=False,
            )
        )
    return b


def _lint_or_refuse(builder: x509.CertificateBuilder, ca_key: Any) -> None:
    copy = builder.sign(lint.throwaway_for(ca_key), signature_hash(ca_key))
    bad = lint.blocking(lint.lint_der(copy.public_bytes(serialization.Encoding.DER)))
    if bad:
        raise Problem(Kind.POLICY, "ca.lint_failed", f"pkilint refused the CA certificate: {bad[0]}", extra={"findings": [str(f) for f in bad]})


def _store_authority(db: Session, *, name: str, cert: x509.Certificate | None, public_key: Any, parent: str | None, is_root: bool, csr_der: bytes | None = None, subject: x509.Name) -> CertificateAuthority:
    row = db.get(CertificateAuthority, name)
    if row is None:
        row = CertificateAuthority(name=name, key_label=key_label(name), created_at=iso(clock.now()))
        db.add(row)
    row.parent = parent
    row.is_root = is_root
    row.active = True
    row.subject = subject.rfc4514_string()
    row.spki_sha256 = spki_sha256(public_key)
    row.csr_der = csr_der
    if cert is not None:
        der = cert.public_bytes(serialization.Encoding.DER)
        row.der = der
        row.serial = serial_hex(cert.serial_number)
        row.sha256 = hashlib.sha256(der).hexdigest()
        row.not_before = iso(cert.not_valid_before_utc)
        row.not_after = iso(cert.not_valid_after_utc)
    db.flush()
    return row


def _ensure_key(rt: Runtime, label: str, spec: str) -> Any:
    if rt.token.has_key(label):
        return rt.token.key(label)
    return rt.token.generate(KeySpec.parse(spec), label)


def create_root(rt: Runtime, db: Session, actor: Actor) -> AuthorityView:
    """Ceremony: the root key in the token and its self-signed certificate (once)."""
    existing = db.get(CertificateAuthority, ROOT)
    if existing is not None and existing.der is not None:
        return _view(existing)
    key = _ensure_key(rt, key_label(ROOT), ROOT_KEY_SPEC)
    name = ca_subject(ROOT, root=True)
    builder = _ca_builder(
        subject=name, issuer=name, public_key=key.public_key(), issuer_public_key=key.public_key(), validity=ROOT_VALIDITY, path_length=None, parent=None, public_url=rt.settings.public_url
    )
    _lint_or_refuse(builder, key)
    cert = builder.sign(key, signature_hash(key))
    row = _store_authority(db, name=ROOT, cert=cert, public_key=key.public_key(), parent=None, is_root=True, subject=name)
    rt.audit.record(
        db,
        actor=actor,
        action="ca.ceremony.root",
        target=f"ca:{ROOT}",
        details={"key_label": row.key_label, "public_key_sha256": public_key_fingerprint(key), "certificate_sha256": row.sha256, "serial": row.serial, "not_after": row.not_after},
    )
    _invalidate(rt)
    return _view(row)


def create_issuing(rt: Runtime, db: Session, actor: Actor, name: str, *, key_spec: str | None = None) -> AuthorityView:
    """Ceremony: an issuing CA key in the token, its certificate signed by the root (once per name)."""
    _check_name(name)
    existing = db.get(CertificateAuthority, name)
    if existing is not None and existing.der is not None:
        return _view(existing)
    root = load_authority(rt, db, ROOT)
    key = _ensure_key(rt, key_label(name), key_spec or rt.settings.ca_key_spec)
    subject = ca_subject(name, root=False)
    builder = _ca_builder(
        subject=subject,
        issuer=root.certificate.subject,
        public_key=key.public_key(),
        issuer_public_key=root.key.public_key(),
        validity=min(ISSUING_VALIDITY, root.certificate.not_valid_after_utc - clock.now() - timedelta(days=1)),
        path_length=0,
        parent=ROOT,
        public_url=rt.settings.public_url,
    )
    _lint_or_refuse(builder, root.key)
    cert = builder.sign(root.key, signature_hash(root.key))
    row = _store_authority(db, name=name, cert=cert, public_key=key.public_key(), parent=ROOT, is_root=False, subject=subject)
    rt.audit.record(
        db,
        actor=actor,
        action="ca.ceremony.issuing",
        target=f"ca:{name}",
        details={
            "key_label": row.key_label,
            "public_key_sha256": public_key_fingerprint(key),
            "certificate_sha256": row.sha256,
            "serial": row.serial,
            "issuer": ROOT,
            "issuer_key_label": root.key_label,
            "not_after": row.not_after,
        },
    )
    _invalidate(rt)
    return _view(row)


def request_external_issuing(rt: Runtime, db: Session, actor: Actor, name: str, *, key_spec: str | None = None) -> bytes:
    """An issuing CA to be signed by an external root: key in the token, PKCS#10 request out (PEM)."""
    _check_name(name)
    existing = db.get(CertificateAuthority, name)
    if existing is not None and existing.der is not None:
        raise Problem(Kind.CONFLICT, "ca.exists", f"CA {name!r} already has a certificate")
    key = _ensure_key(rt, key_label(name), key_spec or rt.settings.ca_key_spec)
    subject = ca_subject(name, root=False)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, signature_hash(key))
    )
    der = csr.public_bytes(serialization.Encoding.DER)
    _store_authority(db, name=name, cert=None, public_key=key.public_key(), parent=None, is_root=False, csr_der=der, subject=subject)
    rt.audit.record(
        db,
        actor=actor,
        action="ca.ceremony.external_request",
        target=f"ca:{name}",
        details={"key_label": key_label(name), "public_key_sha256": public_key_fingerprint(key), "csr_sha256": hashlib.sha256(der).hexdigest()},
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def import_external_issuing(rt: Runtime, db: Session, actor: Actor, name: str, cert_data: bytes, chain_data: bytes) -> AuthorityView:
    """Import the externally signed certificate for ``name`` and its issuer chain (PEM, root last).

    Checked: the certificate's key is our token key, it is a CA certificate, and it verifies up the
    given chain to a self-signed root, which is stored as a (foreign) root authority."""
    row = db.get(CertificateAuthority, name)
    if row is None or row.csr_der is None:
        raise Problem(Kind.NOT_FOUND, "ca.no_pending_request", f"no certificate request is pending for CA {name!r}")
    try:
        cert = _load_cert(cert_data)
        chain = x509.load_pem_x509_certificates(chain_data) if b"-----BEGIN" in chain_data else [x509.load_der_x509_certificate(chain_data)]
    except ValueError:
        raise Problem(Kind.INVALID_INPUT, "ca.bad_certificate", "the certificate or chain could not be decoded") from None
    key = rt.token.key(key_label(name))
    if spki_sha256(cert.public_key()) != spki_sha256(key.public_key()):
        raise Problem(Kind.POLICY, "ca.key_mismatch", "the certificate is not for this CA's key")
    bc = _ext(cert, x509.BasicConstraints)
    if bc is None or not bc.ca:
        raise Problem(Kind.POLICY, "ca.not_a_ca", "the certificate is not a CA certificate")
    issued = cert
    for parent in chain:
        try:
            issued.verify_directly_issued_by(parent)
        except (ValueError, TypeError, Exception) as exc:  # noqa: BLE001 - InvalidSignature and friends
            raise Problem(Kind.POLICY, "ca.chain_invalid", f"the chain does not verify: {exc.__class__.__name__}") from None
        issued = parent
    root_cert = chain[-1] if chain else None
    if root_cert is None or root_cert.issuer != root_cert.subject:
        raise Problem(Kind.POLICY, "ca.chain_invalid", "the chain must end with a self-signed root")
    root_name = f"{name}-root"
    # Intermediates between the external root and this CA are not modelled; a two-level chain is.
    if len(chain) != 1:
        raise Problem(Kind.POLICY, "ca.chain_unsupported", "give the signing root only (two-level hierarchies)")
    root_row = db.get(CertificateAuthority, root_name)
    if root_row is None:
        root_row = CertificateAuthority(name=root_name, key_label=f"external/{root_name}", created_at=iso(clock.now()))
        db.add(root_row)
    der = root_cert.public_bytes(serialization.Encoding.DER)
    root_row.der, root_row.is_root, root_row.active, root_row.parent = der, True, True, None
    root_row.subject = root_cert.subject.rfc4514_string()
    root_row.serial = serial_hex(root_cert.serial_number)
    root_row.sha256 = hashlib.sha256(der).hexdigest()
    root_row.spki_sha256 = spki_sha256(root_cert.public_key())
    root_row.not_before, root_row.not_after = iso(root_cert.not_valid_before_utc), iso(root_cert.not_valid_after_utc)
    db.flush()
    out = _store_authority(db, name=name, cert=cert, public_key=key.public_key(), parent=root_name, is_root=False, subject=cert.subject)
    out.csr_der = None
    rt.audit.record(
        db,
        actor=actor,
        action="ca.ceremony.external_import",
        target=f"ca:{name}",
        details={"certificate_sha256": out.sha256, "issuer": root_name, "issuer_sha256": root_row.sha256, "public_key_sha256": public_key_fingerprint(key)},
    )
    _invalidate(rt)
    return _view(out)


def _ext(cert: x509.Certificate, cls: type) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _load_cert(data: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-z][a-z0-9-]{1,40}", name) or name == ROOT:
        raise Problem(Kind.VALIDATION, "ca.bad_name", "a CA name is 2-41 lowercase letters, digits and dashes", fields=[{"name": "name", "reason": "invalid"}])


# -- loading ----------------------------------------------------------------------------------------


def _invalidate(rt: Runtime) -> None:
    rt.extensions.pop(_CACHE, None)


def load_authority(rt: Runtime, db: Session, name: str) -> Authority:
    """A CA by name with its HSM key and chain, cached per process."""
    cache: dict[str, Authority] = rt.extensions.setdefault(_CACHE, {})
    found = cache.get(name)
    if found is not None:
        return found
    row = db.get(CertificateAuthority, name)
    if row is None or row.der is None or not row.active:
        raise Problem(Kind.NOT_FOUND, "ca.unknown_ca", f"no active certificate authority {name!r}")
    cert = x509.load_der_x509_certificate(row.der)
    chain = [cert]
    parent = row.parent
    while parent is not None:
        prow = db.get(CertificateAuthority, parent)
        if prow is None or prow.der is None:
            break
        chain.append(x509.load_der_x509_certificate(prow.der))
        parent = prow.parent
    key = rt.token.key(row.key_label) if not row.key_label.startswith("external/") else None
    auth = Authority(row.name, row.key_label, cert, key, row.parent, row.is_root, tuple(chain))
    cache[name] = auth
    return auth


def list_authorities(db: Session) -> list[AuthorityView]:
    return [_view(r) for r in db.execute(select(CertificateAuthority).order_by(CertificateAuthority.created_at, CertificateAuthority.name)).scalars()]


def authority_der(db: Session, name: str) -> bytes:
    row = db.get(CertificateAuthority, name)
    if row is None or row.der is None:
        raise Problem(Kind.NOT_FOUND, "ca.unknown_ca", f"no certificate authority {name!r}")
    return row.der
