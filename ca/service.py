"""Use cases of the CA: issuance, look-up, maintenance (renew, re-key, modify), expiry report.

Issuance follows Boulder's ``IssueCertificate`` order; :func:`_issue_drafts` is the one place it
happens, numbered so the crash-safety argument can be read off the code:

1. the request is validated (CSR proof of possession and key checks, profile checks, subject
   resolved from the identity registry) and the exact TBS is built — nothing stored yet;
2. a fresh random serial is stored with status ``pending`` and **committed** — from here on the
   serial is spent, whatever happens (a crash leaves a ``pending`` row that start-up marks ``failed``;
   a serial is never reused);
3. the same builder is signed with a throwaway key and linted with pkilint; an error or fatal
   finding refuses issuance (status ``failed``, problem naming the finding);
4. the HSM signs the linted copy's TBS *bytes* once, and the certificate is assembled from those
   bytes, the copy's signature algorithm and the HSM's signature (so what is signed is by
   construction what was linted); a token failure leaves the row ``failed`` and no certificate;
5. the certificate's TBS is compared with the linted one and its signature verified with the CA
   public key before anything is released;
6. the certificate is stored ``issued`` with its maintenance record and audit entry, committed;
   only then is it returned.

The caller's session is committed at steps 2 and 6 (``core.db.Database.transaction`` allows it).
For several drafts (bulk batches, :func:`issue_many` for the API's group commit) steps 2 and 6 are
one commit each for all of them — one multi-row INSERT of the ``pending`` rows, one executemany
UPDATE, one INSERT of the maintenance records and one of the audit entries (``AuditLog.record_many``:
one lock of the chain head) — while steps 3-5 still run for each certificate on its own.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ca import csr as csr_mod
from ca import hierarchy, lint, profiles
from ca.hierarchy import Authority, iso, serial_hex
from ca.models import FAILED, ISSUED, PENDING, Certificate, MaintenanceRecord
from ca.profiles import IssuanceRequest, Profile, SubjectInfo
from core import clock
from core.errors import Kind, Problem, from_hsm
from core.runtime import Runtime
from core.security import Actor
from hsm.errors import HsmError
from identity import service as identity

BACKDATE = timedelta(minutes=5)  # tolerate relying parties' clock skew (Boulder backdates too)
PENDING_GRACE = timedelta(minutes=10)  # a pending row older than this belongs to a dead process
_STORE_DEADLINE = PENDING_GRACE / 2  # a live process never stores a row the resolver may claim

MAINTENANCE_KINDS = ("issuance", "renewal", "rekey", "modification")

log = logging.getLogger("eauth.ca")


# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCertificate:
    serial: str
    profile: str
    issuer: str
    subject: str
    not_before: str
    not_after: str
    sha256: str
    der: bytes
    replaces_serial: str | None = None

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.der)


@dataclass(frozen=True)
class CertificateView:
    serial: str
    issuer: str
    profile: str
    status: str
    subject: str
    subject_person_id: str | None
    subject_org_id: str | None
    not_before: str
    not_after: str
    sha256: str | None
    spki_sha256: str
    replaces_serial: str | None
    maintenance_reason: str | None
    failure: str | None
    requested_by: str
    created_at: str
    revoked_at: str | None
    revocation_reason: str | None
    invalidity_date: str | None
    der: bytes | None = field(default=None, repr=False)

    @property
    def pem(self) -> str | None:
        if self.der is None:
            return None
        return x509.load_der_x509_certificate(self.der).public_bytes(serialization.Encoding.PEM).decode()

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "der"}
        return out


@dataclass(frozen=True)
class MaintenanceView:
    id: str
    kind: str
    old_serial: str | None
    new_serial: str
    reason: str
    operator: str
    at: str


def _view(row: Certificate) -> CertificateView:
    return CertificateView(
        row.serial,
        row.issuer,
        row.profile,
        row.status,
        row.subject_dn,
        row.subject_person_id,
        row.subject_org_id,
        row.not_before,
        row.not_after,
        row.sha256,
        row.spki_sha256,
        row.replaces_serial,
        row.maintenance_reason,
        row.failure,
        row.requested_by,
        row.created_at,
        row.revoked_at,
        row.revocation_reason,
        row.invalidity_date,
        row.der,
    )


# -- the CA hierarchy, for other packages -----------------------------------------------------------


def issuing_ca(rt: Runtime, db: Session, name: str | None = None) -> Authority:
    """The issuing CA ``name`` (default: the configured one) with its certificate, HSM key and
    chain. The revocation module signs CRLs / OCSP responder certificates with ``.key``."""
    return hierarchy.load_authority(rt, db, name or rt.settings.ca_issuing_name)


def ca_chain(rt: Runtime, db: Session, ca_name: str | None = None) -> list[x509.Certificate]:
    """Issuing CA first, then its issuers up to the root."""
    return list(issuing_ca(rt, db, ca_name).chain)


def root_certificate(rt: Runtime, db: Session, ca_name: str | None = None) -> x509.Certificate:
    return ca_chain(rt, db, ca_name)[-1]


# -- subjects ---------------------------------------------------------------------------------------

_ID_NUMBER = re.compile(r"^\d{17}[\dXx]$")
_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$", re.IGNORECASE)


def resolve_subject(
    rt: Runtime, db: Session, profile: Profile, subject_id: str | None, *, org_id: str | None = None, common_name: str | None = None
) -> SubjectInfo:
    """The subject as the identity registry knows it. ``subject_id`` is a person id, a resident ID
    number, an organisation id or a USCC; nothing about the subject is taken from a CSR."""
    if profile.subject_kind == "internal":
        if not common_name:
            raise Problem(Kind.VALIDATION, "ca.common_name_required", "internal certificates need a responder name", fields=[{"name": "common_name", "reason": "required"}])
        return SubjectInfo(common_name=common_name)
    ref = (subject_id or "").strip()
    if not ref:
        raise Problem(Kind.VALIDATION, "ca.subject_required", "a subject (person id, ID number, organisation id or USCC) is required", fields=[{"name": "subject_id", "reason": "required"}])
    if len(ref) > 64:
        raise Problem(Kind.VALIDATION, "ca.unknown_subject", "no such subject in the identity registry")
    person = None
    org = None
    if _ID_NUMBER.match(ref):
        person = identity.find_person_by_id_number(rt, db, ref)
    if person is None and org is None and _USCC.match(ref):
        org = identity.find_org_by_uscc(db, ref)
    secrets_ = None
    if person is None and org is None and re.fullmatch(r"[0-9a-f]{32}", ref):
        try:
            secrets_ = identity.person_secrets(rt, db, ref)  # one look-up: the person and their data
        except Problem:
            try:
                org = identity.get_org(db, ref)
            except Problem:
                pass
    if person is None and org is None and secrets_ is None:
        raise Problem(Kind.VALIDATION, "ca.unknown_subject", "no such subject in the identity registry", fields=[{"name": "subject_id", "reason": "not registered"}])
    if person is not None or secrets_ is not None:
        if secrets_ is None:
            assert person is not None
            secrets_ = identity.person_secrets(rt, db, person.id)
        person_id = secrets_.id
        email = secrets_.email if secrets_.email and secrets_.email.isascii() else None
        info: dict[str, Any] = {"person_id": person_id, "person_name": secrets_.name, "id_number": secrets_.id_number, "email": email}
        if profile.subject_kind == "staff":
            dept = _department_of(db, person_id, org_id)
            if dept is not None:
                info.update(org_id=dept.id, org_name=dept.name, org_type=dept.type, uscc=dept.uscc, dns_suffixes=dept.dns_suffixes)
        return SubjectInfo(**info)
    assert org is not None
    return SubjectInfo(org_id=org.id, org_name=org.name, org_type=org.type, uscc=org.uscc, dns_suffixes=org.dns_suffixes, common_name=common_name)


def _department_of(db: Session, person_id: str, org_id: str | None) -> identity.OrgView | None:
    orgs = [identity.get_org(db, m.org_id) for m in identity.memberships_of(db, person_id)]
    depts = [o for o in orgs if o.type in ("government", "institution")]
    if org_id:
        chosen = [o for o in orgs if o.id == org_id or o.uscc == org_id.upper()]
        if not chosen:
            raise Problem(Kind.POLICY, "ca.not_a_member", "the person is not a member of that department")
        return chosen[0]
    if len(depts) > 1:
        raise Problem(Kind.VALIDATION, "ca.department_ambiguous", "the person belongs to several departments: name one (org_id)", fields=[{"name": "org_id", "reason": "required"}])
    return depts[0] if depts else None


# -- drafts: steps 1 (validated request, built TBS) -------------------------------------------------


@dataclass
class _Draft:
    profile: Profile
    subject: SubjectInfo
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    dns_names: tuple[str, ...]
    builder: x509.CertificateBuilder
    serial: int
    not_before: datetime
    not_after: datetime
    subject_dn: str
    kind: str = "issuance"
    replaces: str | None = None
    reason: str | None = None
    key_label: str | None = None
    row: dict[str, Any] | None = None  # the certificates row as reserved (step 2)
    actor: Actor | None = None  # who asked (set by _issue_drafts when not per request)


def _normalise_dns(names: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for n in names:
        n = n.strip().lower().rstrip(".")
        if n and n not in out:
            out.append(n)
    return tuple(out)


def _draft(
    rt: Runtime,
    authority: Authority,
    profile: Profile,
    public_key: Any,
    subject: SubjectInfo,
    dns_names: tuple[str, ...],
    *,
    validity: timedelta | None = None,
) -> _Draft:
    csr_mod.check_key_strength(public_key)
    profile.run_checks(IssuanceRequest(profile, public_key, subject, dns_names))
    issuer_cert = authority.certificate
    now = clock.now().replace(microsecond=0)
    not_before = now - BACKDATE
    not_after = min(now + (validity or profile.validity), issuer_cert.not_valid_after_utc)
    if not_after <= now:
        raise Problem(Kind.UNAVAILABLE, "ca.issuer_expired", f"CA {authority.name} can no longer issue (its certificate expires)")
    name = profiles.subject_name(profile, subject, dns_names)
    serial = hierarchy.new_serial()
    builder = (
        x509.CertificateBuilder()
        .serial_number(serial)
        .issuer_name(issuer_cert.subject)
        .subject_name(name)
        .public_key(public_key)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext, critical in profiles.build_extensions(
        profile,
        public_key=public_key,
        issuer_public_key=issuer_cert.public_key(),
        subject=subject,
        dns_names=dns_names,
        public_url=rt.settings.public_url,
        ca_name=authority.name,
        serial=serial,
    ):
        builder = builder.add_extension(ext, critical=critical)
    return _Draft(profile, subject, public_key, dns_names, builder, serial, not_before, not_after, name.rfc4514_string())


def _check_not_ca_key(rt: Runtime, db: Session, authority: Authority, public_key: Any) -> None:
    if any(hierarchy.spki_sha256(c.public_key()) == hierarchy.spki_sha256(public_key) for c in authority.chain):
        raise Problem(Kind.POLICY, "csr.ca_key_reuse", "the request uses a CA's public key")


# -- steps 2-6 ----------------------------------------------------------------------------------------


_CERTS = Certificate.__table__


def _reserve(db: Session, authority: Authority, drafts: list[_Draft]) -> None:
    """Step 2: serials stored ``pending`` and committed before anything is signed (one multi-row
    INSERT for a batch)."""
    at = iso(clock.now())
    rows = []
    for d in drafts:
        d.row = {
            "serial": serial_hex(d.serial),
            "issuer": authority.name,
            "profile": d.profile.name,
            "subject_person_id": d.subject.person_id,
            "subject_org_id": d.subject.org_id,
            "subject_dn": d.subject_dn[:500],
            "status": PENDING,
            "not_before": iso(d.not_before),
            "not_after": iso(d.not_after),
            "spki_sha256": hierarchy.spki_sha256(d.public_key),
            "replaces_serial": d.replaces,
            "maintenance_reason": (d.reason or None) and d.reason[:300],
            "requested_by": d.actor.ref[:200] if d.actor else "",
            "created_at": at,
        }
        rows.append(d.row)
    db.execute(_CERTS.insert(), rows)  # Core, not the ORM's bulk path: a third of the CPU for one row
    db.commit()


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv_end(der: bytes, start: int) -> int:
    """Offset just past the DER element that begins at ``start``."""
    first = der[start + 1]
    if first < 0x80:
        return start + 2 + first
    n = first & 0x7F
    return start + 2 + n + int.from_bytes(der[start + 2 : start + 2 + n], "big")


def _assemble(copy_der: bytes, tbs: bytes, signature: bytes) -> bytes:
    """``Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`` with the
    linted copy's TBS and signature algorithm (RFC 5280 §4.1.1.2: the same as the TBS's) and the
    HSM's signature."""
    offset = 2 + (copy_der[1] & 0x7F if copy_der[1] >= 0x80 else 0)
    if copy_der[offset : offset + len(tbs)] != tbs:
        raise ValueError("the linted copy does not begin with its TBS")
    alg_start = offset + len(tbs)
    algorithm = copy_der[alg_start : _tlv_end(copy_der, alg_start)]
    bits = b"\x00" + signature
    body = tbs + algorithm + b"\x03" + _der_length(len(bits)) + bits
    return b"\x30" + _der_length(len(body)) + body


def _sign_tbs(key: Any, tbs: bytes, algorithm: Any) -> bytes:
    """The CA key's signature over ``tbs`` as ``CertificateBuilder.sign`` makes it (ECDSA, or
    RSASSA-PKCS1-v1_5 for RSA)."""
    if isinstance(key, rsa.RSAPrivateKey):
        from cryptography.hazmat.primitives.asymmetric import padding

        return key.sign(tbs, padding.PKCS1v15(), algorithm)
    return key.sign(tbs, ec.ECDSA(algorithm))


def _lint_and_sign(authority: Authority, d: _Draft) -> x509.Certificate | Problem:
    """Steps 3-5 for one draft: lint the throwaway copy, have the HSM sign *its* TBS bytes, check
    the result."""
    algorithm = hierarchy.signature_hash(authority.key)
    copy = d.builder.sign(lint.throwaway_for(authority.key), algorithm)
    copy_der = copy.public_bytes(serialization.Encoding.DER)
    bad = lint.blocking(lint.lint_der(copy_der))
    if bad:
        return Problem(
            Kind.POLICY, "ca.lint_failed", f"pkilint refused the certificate: {bad[0]}", extra={"findings": [str(f) for f in bad]}
        )
    tbs = copy.tbs_certificate_bytes
    try:
        signature = _sign_tbs(authority.key, tbs, algorithm)
    except HsmError as exc:
        return from_hsm(exc)
    try:
        cert = x509.load_der_x509_certificate(_assemble(copy_der, tbs, signature))
    except ValueError:
        return Problem(Kind.INTERNAL, "ca.bad_signature", "the HSM produced a signature that does not make a certificate")
    if cert.tbs_certificate_bytes != tbs:
        return Problem(Kind.INTERNAL, "ca.tbs_mismatch", "the signed certificate differs from the linted one")
    try:
        cert.verify_directly_issued_by(authority.certificate)
    except Exception:  # noqa: BLE001 - InvalidSignature, ValueError
        return Problem(Kind.INTERNAL, "ca.bad_signature", "the HSM produced a signature that does not verify")
    return cert


def _store(rt: Runtime, db: Session, authority: Authority, drafts: list[_Draft], outcomes: list[x509.Certificate | Problem]) -> list[IssuedCertificate | Problem]:
    """Step 6: results stored with maintenance records and audit entries (one UPDATE per row in one
    round trip, one multi-row INSERT each for the records and the audit chain), committed."""
    now = clock.now()
    at = iso(now)
    results: list[IssuedCertificate | Problem] = []
    updates: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for d, outcome in zip(drafts, outcomes, strict=True):
        row, actor = d.row, d.actor
        assert row is not None and actor is not None
        serial = row["serial"]
        action = f"ca.certificate.{_action(d.kind)}"
        if isinstance(outcome, x509.Certificate) and now - datetime.fromisoformat(row["created_at"]) > _STORE_DEADLINE:
            outcome = Problem(Kind.UNAVAILABLE, "ca.issuance_timeout", "issuance took too long; the serial was retired, retry")
        if isinstance(outcome, Problem):
            updates.append({"serial": serial, "status": FAILED, "failure": f"{outcome.code}: {outcome.detail}"[:300], "status_changed_at": at})
            entries.append(
                {
                    "actor": actor,
                    "action": action,
                    "target": f"certificate:{serial}",
                    "outcome": "failure",
                    "details": {"profile": d.profile.name, "subject": d.subject.ref, "code": outcome.code, "replaces": d.replaces},
                }
            )
            results.append(outcome)
            continue
        der = outcome.public_bytes(serialization.Encoding.DER)
        digest = hashlib.sha256(der).hexdigest()
        updates.append({"serial": serial, "der": der, "sha256": digest, "status": ISSUED, "status_changed_at": at})
        records.append({"id": uuid.uuid4().hex, "kind": d.kind, "old_serial": d.replaces, "new_serial": serial, "reason": d.reason or d.kind, "operator": actor.ref[:200], "at": at})
        details: dict[str, Any] = {
            "profile": d.profile.name,
            "subject": d.subject.ref,
            "issuer": authority.name,
            "sha256": digest,
            "not_after": row["not_after"],
            "spki_sha256": row["spki_sha256"],
        }
        if d.replaces:
            details.update(replaces=d.replaces, reason=d.reason)
        if d.key_label:
            details["key_label"] = d.key_label
        entries.append({"actor": actor, "action": action, "target": f"certificate:{serial}", "details": details})
        results.append(
            IssuedCertificate(serial, d.profile.name, authority.name, row["subject_dn"], row["not_before"], row["not_after"], digest, der, d.replaces)
        )
    for keys in {tuple(u) for u in updates}:  # one executemany per shape (issued / failed)
        columns = [k for k in keys if k != "serial"]
        stmt = _CERTS.update().where(_CERTS.c.serial == bindparam("key_serial")).values({c: bindparam(c) for c in columns})
        db.execute(stmt, [{"key_serial": u["serial"], **{c: u[c] for c in columns}} for u in updates if tuple(u) == keys])
    if records:
        db.execute(MaintenanceRecord.__table__.insert(), records)
    rt.audit.record_many(db, entries)
    db.commit()
    return results


def _action(kind: str) -> str:
    return {"issuance": "issue", "renewal": "renew", "rekey": "rekey", "modification": "modify"}[kind]


def _issue_drafts(rt: Runtime, db: Session, actor: Actor | None, authority: Authority, drafts: list[_Draft]) -> list[IssuedCertificate | Problem]:
    """Steps 2-6 for validated drafts (step 1) — see the module docstring. ``actor`` is who asked
    for drafts that do not name their own."""
    if not drafts:
        return []
    for d in drafts:
        d.actor = d.actor or actor
        if d.actor is None:
            raise ValueError("a draft without an actor")
    _reserve(db, authority, drafts)  # 2
    outcomes = [_lint_and_sign(authority, d) for d in drafts]  # 3, 4, 5
    return _store(rt, db, authority, drafts, outcomes)  # 6


def _one(results: list[IssuedCertificate | Problem]) -> IssuedCertificate:
    (result,) = results
    if isinstance(result, Problem):
        raise result
    return result


# -- issuance ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateRequest:
    """One single issuance as the API receives it (see :func:`issue_many`)."""

    actor: Actor
    profile: str
    csr: bytes
    subject_id: str | None
    dns_names: tuple[str, ...] = ()
    ca_name: str | None = None
    org_id: str | None = None
    common_name: str | None = None


def _prepare(rt: Runtime, db: Session, req: CertificateRequest) -> tuple[Authority, _Draft]:
    """Step 1 for one request: CSR, profile and key checks, the subject from the registry, the TBS."""
    prof = profiles.get_profile(req.profile)
    if prof.internal:
        raise Problem(Kind.FORBIDDEN, "ca.internal_profile", f"profile {req.profile} is only issued to keys generated in the platform's HSM")
    parsed = csr_mod.parse(req.csr)
    names = _normalise_dns(req.dns_names) or (_normalise_dns(parsed.dns_names) if prof.subject_kind == "server" else ())
    authority = issuing_ca(rt, db, req.ca_name)
    _check_not_ca_key(rt, db, authority, parsed.public_key)
    subject = resolve_subject(rt, db, prof, req.subject_id, org_id=req.org_id, common_name=req.common_name)
    draft = _draft(rt, authority, prof, parsed.public_key, subject, names)
    draft.actor = req.actor
    return authority, draft


def issue_certificate(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    profile: str,
    csr: bytes,
    subject_id: str | None,
    dns_names: Sequence[str] = (),
    ca_name: str | None = None,
    org_id: str | None = None,
    common_name: str | None = None,
) -> IssuedCertificate:
    """Issue a certificate for a PKCS#10 request (PEM or DER). Commits ``db`` (see module doc)."""
    req = CertificateRequest(actor, profile, csr, subject_id, tuple(dns_names), ca_name, org_id, common_name)
    authority, draft = _prepare(rt, db, req)
    return _one(_issue_drafts(rt, db, actor, authority, [draft]))


def issue_many(rt: Runtime, db: Session, requests: Sequence[CertificateRequest]) -> list[IssuedCertificate | Exception]:
    """Independent single issuances (each with its own requester) sharing the two commits of
    :func:`_issue_drafts`: the API's group commit (``ca.groupcommit``). Each request gets exactly
    what :func:`issue_certificate` would give it — its certificate or its problem (or, for a request
    that trips an unexpected error while it is checked, that error) — and one request's problem never
    touches another's result. Commits ``db``."""
    results: list[IssuedCertificate | Exception | None] = [None] * len(requests)
    groups: dict[str, tuple[Authority, list[tuple[int, _Draft]]]] = {}
    refs = [(req.subject_id or "").strip() for req in requests]
    held = identity.prefetch_persons(db, [r for r in refs if re.fullmatch(r"[0-9a-f]{32}", r)]) if len(requests) > 1 else []
    for i, req in enumerate(requests):
        try:
            authority, draft = _prepare(rt, db, req)
        except SQLAlchemyError:
            # the database failed, not this request: the group's session is unusable for all of them,
            # and core.db.Database.transaction turns the error into the 503 problem each one hears
            raise
        except Exception as exc:  # noqa: BLE001 - that request's own outcome (a 500 for it alone)
            results[i] = exc
            continue
        groups.setdefault(authority.name, (authority, []))[1].append((i, draft))
    del held
    for authority, pairs in groups.values():
        for (i, _), outcome in zip(pairs, _issue_drafts(rt, db, None, authority, [d for _, d in pairs]), strict=True):
            results[i] = outcome
    out = [r for r in results if r is not None]
    assert len(out) == len(requests)
    return out


def issue_for_public_key(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    profile: str,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    subject_id: str | None = None,
    common_name: str | None = None,
    dns_names: Sequence[str] = (),
    ca_name: str | None = None,
    org_id: str | None = None,
    key_label: str | None = None,
) -> IssuedCertificate:
    """Issue for a key generated inside our own HSM (``seal/<dept>/<n>``, ``tsa/<n>``,
    ``ocsp/<ca>``): there is no CSR because the platform holds the key. ``internal`` profiles
    (ocsp, tsa) take ``common_name`` and no subject; ``seal`` takes the department as
    ``subject_id`` and the seal's name as ``common_name``. Commits ``db``."""
    prof = profiles.get_profile(profile)
    if not isinstance(public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise Problem(Kind.INVALID_INPUT, "csr.unsupported_key", "only EC and RSA public keys are accepted")
    authority = issuing_ca(rt, db, ca_name)
    _check_not_ca_key(rt, db, authority, public_key)
    subject = resolve_subject(rt, db, prof, subject_id, org_id=org_id, common_name=common_name)
    draft = _draft(rt, authority, prof, public_key, subject, _normalise_dns(dns_names))
    draft.key_label = key_label
    return _one(_issue_drafts(rt, db, actor, authority, [draft]))


# -- bulk -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkItem:
    ref: str  # file name / CSV line, echoed in the result file
    csr: bytes
    subject_id: str | None
    dns_names: tuple[str, ...] = ()
    org_id: str | None = None


@dataclass(frozen=True)
class BulkResult:
    ref: str
    ok: bool
    serial: str | None = None
    code: str | None = None
    detail: str | None = None
    certificate: IssuedCertificate | None = None


def issue_batch(rt: Runtime, db: Session, actor: Actor, *, profile: str, items: Sequence[BulkItem], ca_name: str | None = None) -> list[BulkResult]:
    """Issue many certificates with the same checks and records as :func:`issue_certificate`,
    two commits per batch instead of two per certificate. A bad item becomes a failed result and
    never aborts or half-commits the others."""
    prof = profiles.get_profile(profile)
    if prof.internal:
        raise Problem(Kind.FORBIDDEN, "ca.internal_profile", f"profile {profile} is only issued to keys generated in the platform's HSM")
    authority = issuing_ca(rt, db, ca_name)
    results: list[BulkResult | None] = [None] * len(items)
    drafts: list[_Draft] = []
    positions: list[int] = []
    refs = [(item.subject_id or "").strip() for item in items]
    held = identity.prefetch_persons(db, [r for r in refs if re.fullmatch(r"[0-9a-f]{32}", r)])  # one query, not one per item
    for i, item in enumerate(items):
        try:
            parsed = csr_mod.parse(item.csr)
            names = _normalise_dns(item.dns_names) or (_normalise_dns(parsed.dns_names) if prof.subject_kind == "server" else ())
            _check_not_ca_key(rt, db, authority, parsed.public_key)
            subject = resolve_subject(rt, db, prof, item.subject_id, org_id=item.org_id)
            drafts.append(_draft(rt, authority, prof, parsed.public_key, subject, names))
            positions.append(i)
        except Problem as exc:
            if exc.kind in (Kind.UNAVAILABLE, Kind.HSM_UNAVAILABLE):
                raise  # not this item's fault: the whole batch waits for the service (ca.bulk.run_batch)
            results[i] = BulkResult(item.ref, False, code=exc.code, detail=exc.detail)
        except SQLAlchemyError:
            raise  # the batch's transaction is broken: ca.bulk.run_batch reports the batch
        except Exception:  # noqa: BLE001 - one item's unexpected failure must not take the other items with it
            incident = uuid.uuid4().hex[:12]
            log.exception("bulk item %s failed unexpectedly (incident %s)", item.ref, incident)
            results[i] = BulkResult(item.ref, False, code="ca.item_failed", detail=f"unexpected error while checking this item (incident {incident} in the log)")
    del held
    for pos, outcome, d in zip(positions, _issue_drafts(rt, db, actor, authority, drafts), drafts, strict=True):
        serial = serial_hex(d.serial)
        if isinstance(outcome, Problem):
            results[pos] = BulkResult(items[pos].ref, False, serial=serial, code=outcome.code, detail=outcome.detail)
        else:
            results[pos] = BulkResult(items[pos].ref, True, serial=serial, certificate=outcome)
    return [r for r in results if r is not None]


# -- look-up ----------------------------------------------------------------------------------------


def normalise_serial(serial: str) -> str:
    s = serial.strip().lower().replace(":", "")
    if s.startswith("0x"):
        s = s[2:]
    s = s.lstrip("0") or "0"
    if not re.fullmatch(r"[0-9a-f]{1,40}", s):
        raise Problem(Kind.INVALID_INPUT, "ca.bad_serial", "a serial number is up to 40 hexadecimal digits")
    return s


def get_certificate(db: Session, serial: str) -> CertificateView:
    row = db.get(Certificate, normalise_serial(serial))
    if row is None:
        raise Problem(Kind.NOT_FOUND, "ca.certificate_not_found", f"no certificate with serial {serial}")
    return _view(row)


def get_issued(db: Session, serial: str) -> tuple[CertificateView, x509.Certificate]:
    """A certificate that exists (issued, revoked or on hold) with its parsed form."""
    view = get_certificate(db, serial)
    if view.der is None:
        raise Problem(Kind.NOT_FOUND, "ca.certificate_not_issued", f"serial {view.serial} has no certificate ({view.status})")
    return view, x509.load_der_x509_certificate(view.der)


def certificates_of(db: Session, *, person_id: str | None = None, org_id: str | None = None, limit: int = 100) -> list[CertificateView]:
    q = select(Certificate).where(Certificate.der.is_not(None)).order_by(Certificate.created_at.desc()).limit(min(limit, 1000))
    if person_id:
        q = q.where(Certificate.subject_person_id == person_id)
    if org_id:
        q = q.where(Certificate.subject_org_id == org_id)
    return [_view(r) for r in db.execute(q).scalars()]


def maintenance_history(db: Session, serial: str) -> list[MaintenanceView]:
    s = normalise_serial(serial)
    rows = db.execute(select(MaintenanceRecord).where((MaintenanceRecord.old_serial == s) | (MaintenanceRecord.new_serial == s))).scalars()
    # How this certificate came to be comes before what replaced it (times tie at 1 s resolution).
    rows = sorted(rows, key=lambda r: (r.at, 0 if r.new_serial == s else 1))
    return [MaintenanceView(r.id, r.kind, r.old_serial, r.new_serial, r.reason, r.operator, r.at) for r in rows]


def expiring(db: Session, *, days: int, now: datetime | None = None) -> list[CertificateView]:
    """Issued (or on-hold) certificates whose ``not_after`` falls within ``days`` from now."""
    if days < 0 or days > 3650:
        raise Problem(Kind.VALIDATION, "ca.bad_days", "days must be between 0 and 3650", fields=[{"name": "days", "reason": "out of range"}])
    start = now or clock.now()
    q = (
        select(Certificate)
        .where(Certificate.status.in_((ISSUED, "on_hold")), Certificate.not_after >= iso(start), Certificate.not_after <= iso(start + timedelta(days=days)))
        .order_by(Certificate.not_after)
    )
    return [_view(r) for r in db.execute(q).scalars()]


def pkcs7_chain(rt: Runtime, db: Session, serial: str) -> bytes:
    """A degenerate PKCS#7 SignedData (RFC 2315 certs-only) with the certificate and its chain, DER."""
    view, cert = get_issued(db, serial)
    chain = ca_chain(rt, db, view.issuer)
    return pkcs7.serialize_certificates([cert, *chain], serialization.Encoding.DER)


# -- maintenance ------------------------------------------------------------------------------------


def _maintained(rt: Runtime, db: Session, serial: str) -> tuple[CertificateView, x509.Certificate, Profile, Authority]:
    view, cert = get_issued(db, serial)
    if view.status not in (ISSUED, "on_hold"):
        raise Problem(Kind.CONFLICT, "ca.not_maintainable", f"certificate {view.serial} is {view.status}")
    return view, cert, profiles.get_profile(view.profile), issuing_ca(rt, db, view.issuer)


def _dns_of(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        return tuple(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return ()


def _cn_of(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason or len(reason) > 300:
        raise Problem(Kind.VALIDATION, "ca.reason_required", "a reason of 1-300 characters is required", fields=[{"name": "reason", "reason": "required"}])
    return reason


def _maintain(
    rt: Runtime, db: Session, actor: Actor, serial: str, *, kind: str, reason: str, public_key: Any | None, refresh_subject: bool
) -> IssuedCertificate:
    reason = _reason(reason)
    view, cert, prof, authority = _maintained(rt, db, serial)
    key = public_key if public_key is not None else cert.public_key()
    subject_ref = view.subject_person_id or view.subject_org_id
    subject = resolve_subject(rt, db, prof, subject_ref, org_id=view.subject_org_id if view.subject_person_id else None, common_name=_cn_of(cert) if prof.subject_kind in ("department", "internal") else None)
    if not refresh_subject and profiles.subject_name(prof, subject, _dns_of(cert)).rfc4514_string() != view.subject:
        raise Problem(
            Kind.CONFLICT, "ca.subject_changed", "the registry record changed since issuance: use modification, not renewal/re-key"
        )
    if public_key is not None:
        _check_not_ca_key(rt, db, authority, public_key)
        if hierarchy.spki_sha256(public_key) == view.spki_sha256:
            raise Problem(Kind.POLICY, "ca.rekey_same_key", "a re-key needs a new key")
    draft = _draft(rt, authority, prof, key, subject, _dns_of(cert))
    draft.kind, draft.replaces, draft.reason = kind, view.serial, reason
    return _one(_issue_drafts(rt, db, actor, authority, [draft]))


def renew(rt: Runtime, db: Session, actor: Actor, serial: str, *, reason: str = "renewal") -> IssuedCertificate:
    """Same key, same subject, new validity period; linked to the certificate it replaces."""
    return _maintain(rt, db, actor, serial, kind="renewal", reason=reason, public_key=None, refresh_subject=False)


def rekey(rt: Runtime, db: Session, actor: Actor, serial: str, *, csr: bytes, reason: str = "re-key") -> IssuedCertificate:
    """A new key (from a new CSR) for the same subject."""
    parsed = csr_mod.parse(csr)
    return _maintain(rt, db, actor, serial, kind="rekey", reason=reason, public_key=parsed.public_key, refresh_subject=False)


def modify(rt: Runtime, db: Session, actor: Actor, serial: str, *, reason: str) -> IssuedCertificate:
    """Same key, subject data re-read from the identity registry (name, department, e-mail)."""
    return _maintain(rt, db, actor, serial, kind="modification", reason=reason, public_key=None, refresh_subject=True)


# -- crash recovery ---------------------------------------------------------------------------------


def resolve_pending(rt: Runtime, db: Session, actor: Actor, *, now: datetime | None = None) -> list[str]:
    """Mark ``pending`` rows left by a dead process ``failed`` (their serials stay retired).

    Only rows older than :data:`PENDING_GRACE` are touched, so another live worker's in-flight
    issuance is left alone (it refuses to store after ``PENDING_GRACE / 2``)."""
    cutoff = iso((now or clock.now()) - PENDING_GRACE)
    serials = list(db.execute(select(Certificate.serial).where(Certificate.status == PENDING, Certificate.created_at < cutoff)).scalars())
    if not serials:
        return []
    at = iso(now or clock.now())
    db.execute(
        update(Certificate)
        .where(Certificate.serial.in_(serials), Certificate.status == PENDING)
        .values(status=FAILED, failure="interrupted before the certificate was stored; serial retired", status_changed_at=at)
    )
    rt.audit.record(db, actor=actor, action="ca.pending.resolve", target="ca", details={"serials": serials[:100], "count": len(serials)})
    return serials


__all__ = [
    "BulkItem",
    "BulkResult",
    "CertificateRequest",
    "CertificateView",
    "IssuedCertificate",
    "ca_chain",
    "expiring",
    "get_certificate",
    "issue_batch",
    "issue_certificate",
    "issue_for_public_key",
    "issue_many",
    "issuing_ca",
    "modify",
    "rekey",
    "renew",
    "resolve_pending",
]
