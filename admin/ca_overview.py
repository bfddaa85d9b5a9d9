"""What a CA administrator reads about the platform's own PKI: the CA hierarchy (keys, fingerprints,
validity, latest CRL), the OCSP responders' and timestamp units' certificates and whether their HSM
keys are present, and each certificate profile's rules — read-only views built from the owners'
tables (``ca``, ``signing``) and the token (``rt.token.has_key``: a label look-up, no key use).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import clock
from core.runtime import Runtime

EXPIRING_DAYS = 30  # the most warning a certificate gets (less for short-lived ones: see _state)


@dataclass(frozen=True)
class AuthorityRow:
    name: str
    role: str  # root | issuing
    parent: str | None
    subject: str
    key_label: str
    key_present: bool
    serial: str | None
    sha256: str | None
    spki_sha256: str
    not_before: str | None
    not_after: str | None
    active: bool
    state: str  # ok | expiring | expired | awaiting_signature | inactive | key_missing
    crl_number: int | None
    crl_next_update: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class KeyCertRow:
    """An OCSP responder or a timestamp unit: its HSM key and current certificate."""

    kind: str  # ocsp | tsa
    name: str  # the issuing CA it answers for, or the unit's name
    key_label: str
    key_present: bool
    serial: str
    subject: str
    not_before: str
    not_after: str
    active: bool
    state: str  # ok | expiring | expired | inactive | key_missing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ProfileRules:
    name: str
    description: str
    subject_kind: str
    validity_days: int
    key_types: tuple[str, ...]
    min_rsa_bits: int
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    eku_critical: bool
    policy: str
    checks: tuple[tuple[str, str], ...]  # (name, first line of its docstring)
    internal: bool
    ocsp_nocheck: bool
    revocation_pointers: bool
    email_san: bool
    approvals_required: int

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checks"] = [{"name": n, "rule": r} for n, r in self.checks]
        return d


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _state(not_before: str | None, not_after: str | None, *, active: bool, key_present: bool, now: datetime) -> str:
    """``expiring`` when less than a quarter of the lifetime (at most 30 days) is left: short-lived
    certificates (the OCSP responder's 30 days) are renewed automatically at a third, so one
    flagged here missed its renewal."""
    if not key_present:
        return "key_missing"
    if not active:
        return "inactive"
    if not_after is None:
        return "awaiting_signature"
    end = _utc(not_after)
    if end <= now:
        return "expired"
    lifetime = end - _utc(not_before) if not_before else timedelta(days=4 * EXPIRING_DAYS)
    if end - now <= min(timedelta(days=EXPIRING_DAYS), lifetime / 4):
        return "expiring"
    return "ok"


def _has_key(rt: Runtime, label: str) -> bool:
    try:
        return bool(rt.token.has_key(label))
    except Exception:  # noqa: BLE001 - an unreachable token shows as a missing key, not a 500
        return False


def authorities(rt: Runtime, db: Session) -> list[AuthorityRow]:
    from ca import crl, hierarchy

    now = clock.now()
    rows = []
    for a in hierarchy.list_authorities(db):
        present = _has_key(rt, a.key_label)
        latest = crl.latest_crl(db, a.name)
        rows.append(
            AuthorityRow(
                a.name, "root" if a.is_root else "issuing", a.parent, a.subject, a.key_label, present, a.serial, a.sha256, a.spki_sha256,
                a.not_before, a.not_after, a.active, _state(a.not_before, a.not_after, active=a.active, key_present=present, now=now),
                latest.number if latest else None, latest.next_update if latest else None,
            )
        )
    return rows


def _cert_row(rt: Runtime, kind: str, name: str, label: str, der: bytes, active: bool, now: datetime) -> KeyCertRow:
    cert = x509.load_der_x509_certificate(der)
    present = _has_key(rt, label)
    not_before, not_after = cert.not_valid_before_utc.isoformat(timespec="seconds"), cert.not_valid_after_utc.isoformat(timespec="seconds")
    return KeyCertRow(
        kind, name, label, present, format(cert.serial_number, "x"), cert.subject.rfc4514_string(), not_before,
        not_after, active, _state(not_before, not_after, active=active, key_present=present, now=now),
    )


def responders_and_tsa(rt: Runtime, db: Session) -> list[KeyCertRow]:
    """The delegated OCSP responder of each issuing CA, then each timestamp unit."""
    from ca.models import OcspResponder
    from signing.models import TsaUnit

    now = clock.now()
    out = [_cert_row(rt, "ocsp", r.issuer, r.key_label, r.der, True, now) for r in db.execute(select(OcspResponder).order_by(OcspResponder.issuer)).scalars()]
    out += [_cert_row(rt, "tsa", u.name, u.key_label, u.cert_der, bool(u.active), now) for u in db.execute(select(TsaUnit).order_by(TsaUnit.name)).scalars()]
    return out


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)
    return f"{name} ({oid.dotted_string})" if name and name != "Unknown OID" else oid.dotted_string


def profiles() -> list[ProfileRules]:
    from admin.service import approvals_required
    from ca import profiles as ca_profiles

    out = []
    for p in ca_profiles.PROFILES.values():
        checks = tuple((c.__name__, ((c.__doc__ or "").strip().splitlines() or [""])[0]) for c in p.checks)
        out.append(
            ProfileRules(
                p.name, p.description, p.subject_kind, p.validity.days, tuple(sorted(p.key_types)), p.min_rsa_bits, tuple(sorted(p.key_usage)),
                tuple(_oid_name(o) for o in p.eku), p.eku_critical, p.policy.dotted_string, checks, p.internal, p.ocsp_nocheck,
                p.revocation_pointers, p.email_san, approvals_required(p.name),
            )
        )
    return out
