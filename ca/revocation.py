"""Status changes of issued certificates: revoke, suspend (certificateHold), resume.

Each use case is one unit of work in the caller's transaction (ARCHITECTURE.md flow 2):

1. lock the certificate row and check the transition (an illegal one is a 409 problem, never a
   silent success);
2. write status, reason, revocation time, invalidity date, operator, change time;
3. bump the CA's change counter (the CRL publisher re-publishes, debounced, when it moves);
4. re-sign the certificate's pre-signed OCSP response and store it under a new change ``seq``
   (worker processes drop their in-process copy when they see the ``seq`` — within a fraction of
   a second);
5. audit entry.

Nothing is committed unless all five succeed, so a failure (HSM unavailable, database error)
leaves no half-written record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ca import ocsp
from ca.crl import REASON_CODES, revocation_state
from ca.models import ISSUED, ON_HOLD, REVOKED, Certificate, RevocationState
from core import clock
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor

HOLD = "certificateHold"

# Reasons an operator may give for a permanent revocation (RFC 5280 §5.3.1). certificateHold is
# ``suspend``; removeFromCRL exists only in delta CRLs (we publish none).
REVOCATION_REASONS = tuple(r for r in REASON_CODES if r not in (HOLD, "removeFromCRL"))

_ALIASES = {r.lower(): r for r in REVOCATION_REASONS} | {
    "key_compromise": "keyCompromise",
    "ca_compromise": "cACompromise",
    "affiliation_changed": "affiliationChanged",
    "cessation_of_operation": "cessationOfOperation",
    "privilege_withdrawn": "privilegeWithdrawn",
    "aa_compromise": "aACompromise",
}


def parse_reason(value: str) -> str:
    """The RFC 5280 reason name for ``value`` (``keyCompromise``, ``key_compromise``, any case)."""
    reason = _ALIASES.get(value.strip().lower().replace("-", "_")) or _ALIASES.get(value.strip().lower())
    if reason is None:
        raise Problem(
            Kind.VALIDATION,
            "revocation.unknown_reason",
            f"unknown revocation reason {value!r}; one of {', '.join(REVOCATION_REASONS)} (suspend for certificateHold)",
            fields=[{"name": "reason", "reason": "unknown"}],
        )
    return reason


@dataclass(frozen=True)
class StatusChange:
    serial: str
    issuer: str
    status: str  # issued | revoked | on_hold
    reason: str | None
    revoked_at: str | None
    invalidity_date: str | None
    changed_by: str
    changed_at: str
    previous_status: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "serial": self.serial,
            "issuer": self.issuer,
            "status": self.status,
            "previous_status": self.previous_status,
            "reason": self.reason,
            "revoked_at": self.revoked_at,
            "invalidity_date": self.invalidity_date,
            "changed_by": self.changed_by,
            "changed_at": self.changed_at,
        }


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def normalise_serial(serial: str) -> str:
    """Stored form: lowercase hex without leading zeros. Accepts ``0x``, colons and upper case."""
    text = serial.strip().lower().replace(":", "")
    if text.startswith("0x"):
        text = text[2:]
    try:
        value = int(text, 16)
    except ValueError:
        raise Problem(Kind.INVALID_INPUT, "certificate.bad_serial", f"not a hexadecimal serial number: {serial!r}") from None
    if value <= 0 or value.bit_length() > 160:
        raise Problem(Kind.INVALID_INPUT, "certificate.bad_serial", "a serial number is a positive integer of at most 20 octets")
    return format(value, "x")


def _locked(db: Session, serial: str) -> Certificate:
    cert = db.execute(select(Certificate).where(Certificate.serial == normalise_serial(serial)).with_for_update()).scalar_one_or_none()
    if cert is None:
        raise Problem(Kind.NOT_FOUND, "certificate.not_found", f"no certificate with serial {serial}")
    return cert


def _result(cert: Certificate, actor: Actor, previous: str) -> StatusChange:
    return StatusChange(
        serial=cert.serial,
        issuer=cert.issuer,
        status=cert.status,
        reason=cert.revocation_reason,
        revoked_at=cert.revoked_at,
        invalidity_date=cert.invalidity_date,
        changed_by=actor.ref,
        changed_at=cert.status_changed_at or "",
        previous_status=previous,
    )


def _after_change(rt: Runtime, db: Session, cert: Certificate, now: datetime) -> None:
    """Steps 3 and 4: CRL change counter, OCSP response re-signed under a new change seq."""
    revocation_state(db, cert.issuer)
    db.execute(
        update(RevocationState)
        .where(RevocationState.issuer == cert.issuer)
        .values(changes=RevocationState.changes + 1, changed_at=_iso(now))
    )
    db.flush()
    ocsp.store_status_change(rt, db, cert)


def revoke(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    serial: str,
    reason: str,
    invalidity_date: datetime | None = None,
    comment: str | None = None,
) -> StatusChange:
    """Revoke permanently (a held certificate may be revoked; a revoked one cannot be again)."""
    reason = parse_reason(reason)
    now = clock.now().replace(microsecond=0)
    if invalidity_date is not None:
        if invalidity_date.tzinfo is None:
            invalidity_date = invalidity_date.replace(tzinfo=UTC)
        if invalidity_date > now + timedelta(seconds=5):
            raise Problem(
                Kind.VALIDATION,
                "revocation.invalidity_in_future",
                "the invalidity date is when the key became unusable; it cannot be in the future",
                fields=[{"name": "invalidity_date", "reason": "in the future"}],
            )
    cert = _locked(db, serial)
    previous = cert.status
    if previous == REVOKED:
        raise Problem(Kind.CONFLICT, "certificate.already_revoked", f"certificate {cert.serial} was already revoked at {cert.revoked_at}")
    if previous not in (ISSUED, ON_HOLD):
        raise Problem(Kind.CONFLICT, "certificate.not_issued", f"certificate {cert.serial} is {previous}, not issued")
    cert.status = REVOKED
    cert.revoked_at = _iso(now)
    cert.revocation_reason = reason
    cert.invalidity_date = _iso(invalidity_date) if invalidity_date is not None else None
    cert.revoked_by = actor.ref
    cert.status_changed_at = _iso(now)
    _after_change(rt, db, cert, now)
    details = {"reason": reason, "previous_status": previous, "issuer": cert.issuer}
    if cert.invalidity_date:
        details["invalidity_date"] = cert.invalidity_date
    if comment:
        details["comment"] = comment[:500]
    rt.audit.record(db, actor=actor, action="ca.certificate.revoke", target=f"certificate:{cert.serial}", details=details)
    return _result(cert, actor, previous)


def suspend(rt: Runtime, db: Session, actor: Actor, *, serial: str, comment: str | None = None) -> StatusChange:
    """Put an issued certificate on hold (revoked with reason certificateHold until resumed)."""
    now = clock.now().replace(microsecond=0)
    cert = _locked(db, serial)
    previous = cert.status
    if previous == ON_HOLD:
        raise Problem(Kind.CONFLICT, "certificate.already_on_hold", f"certificate {cert.serial} is already on hold")
    if previous == REVOKED:
        raise Problem(Kind.CONFLICT, "certificate.already_revoked", f"certificate {cert.serial} is revoked; a revocation cannot be suspended")
    if previous != ISSUED:
        raise Problem(Kind.CONFLICT, "certificate.not_issued", f"certificate {cert.serial} is {previous}, not issued")
    cert.status = ON_HOLD
    cert.revoked_at = _iso(now)
    cert.revocation_reason = HOLD
    cert.invalidity_date = None
    cert.revoked_by = actor.ref
    cert.status_changed_at = _iso(now)
    _after_change(rt, db, cert, now)
    details = {"issuer": cert.issuer} | ({"comment": comment[:500]} if comment else {})
    rt.audit.record(db, actor=actor, action="ca.certificate.suspend", target=f"certificate:{cert.serial}", details=details)
    return _result(cert, actor, previous)


def resume(rt: Runtime, db: Session, actor: Actor, *, serial: str, comment: str | None = None) -> StatusChange:
    """Lift a hold: the certificate is good again (it leaves the next CRL; RFC 5280 §5.3.1 allows
    removing certificateHold entries from a full CRL)."""
    now = clock.now().replace(microsecond=0)
    cert = _locked(db, serial)
    previous = cert.status
    if previous != ON_HOLD:
        raise Problem(Kind.CONFLICT, "certificate.not_on_hold", f"certificate {cert.serial} is {previous}, not on hold")
    held_since = cert.revoked_at
    cert.status = ISSUED
    cert.revoked_at = None
    cert.revocation_reason = None
    cert.invalidity_date = None
    cert.revoked_by = None
    cert.status_changed_at = _iso(now)
    _after_change(rt, db, cert, now)
    details = {"issuer": cert.issuer, "held_since": held_since} | ({"comment": comment[:500]} if comment else {})
    rt.audit.record(db, actor=actor, action="ca.certificate.resume", target=f"certificate:{cert.serial}", details=details)
    return _result(cert, actor, previous)
