"""What "nothing lost, nothing half-written" means, checked against the database and the token.

Used by the fault, crash and disaster-recovery tests. Each check returns human-readable violations
(empty list: all good) so a failing test says exactly what broke.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from cryptography import x509
from sqlalchemy import select

from core.audit import AuditEntry

# statuses whose row must hold a signed certificate and an audit entry for its issuance
SIGNED = {"issued", "revoked", "suspended", "expired"}
ISSUE_ACTIONS = ("ca.certificate.issue", "ca.certificate.renew", "ca.certificate.rekey", "ca.certificate.modify")


def audit_targets(session: Any, *, prefix: str = "ca.certificate.") -> dict[str, list[tuple[str, str]]]:
    """target → [(action, outcome)] for audit entries whose action starts with ``prefix``."""
    out: dict[str, list[tuple[str, str]]] = {}
    for action, target, outcome in session.execute(
        select(AuditEntry.action, AuditEntry.target, AuditEntry.outcome).where(AuditEntry.action.like(prefix + "%"))
    ):
        out.setdefault(target, []).append((action, outcome))
    return out


def certificate_violations(rt: Any, *, allow_pending: bool = True) -> list[str]:
    """Every signed certificate has its row, its issuance audit entry and a valid signature; every
    successful issuance entry has its certificate; revocations are audited; no serial twice."""
    from ca.models import Certificate
    from ca.service import issuing_ca

    problems: list[str] = []
    with rt.db.read() as s:
        rows = list(s.execute(select(Certificate)).scalars())
        audited = audit_targets(s)
        authority = issuing_ca(rt, s)
        issuer_cert = authority.certificate
        serial_counts = Counter(r.serial for r in rows)
        problems += [f"serial {k} stored {n} times" for k, n in serial_counts.items() if n > 1]
        by_serial = {r.serial: r for r in rows}
        for r in rows:
            entries = audited.get(f"certificate:{r.serial}", [])
            issued_ok = [a for a, o in entries if a in ISSUE_ACTIONS and o == "success"]
            if r.status in SIGNED:
                if r.der is None:
                    problems.append(f"{r.serial}: status {r.status} without a certificate")
                    continue
                if not issued_ok:
                    problems.append(f"{r.serial}: certificate without its issuance audit entry")
                cert = x509.load_der_x509_certificate(r.der)
                if format(cert.serial_number, "x") != r.serial:
                    problems.append(f"{r.serial}: stored certificate carries serial {cert.serial_number:x}")
                if r.issuer == authority.name:
                    try:
                        cert.verify_directly_issued_by(issuer_cert)
                    except Exception as exc:  # noqa: BLE001
                        problems.append(f"{r.serial}: signature does not verify ({exc})")
                if r.status == "revoked" and not any(a == "ca.certificate.revoke" for a, _ in entries):
                    problems.append(f"{r.serial}: revoked without a revocation audit entry")
                if r.status == "suspended" and not any(a == "ca.certificate.suspend" for a, _ in entries):
                    problems.append(f"{r.serial}: suspended without a suspension audit entry")
            else:
                if r.der is not None:
                    problems.append(f"{r.serial}: status {r.status} yet a certificate is stored")
                if issued_ok:
                    problems.append(f"{r.serial}: audit says issued but the row is {r.status}")
                if r.status == "pending" and not allow_pending:
                    problems.append(f"{r.serial}: still pending")
        for target, entries in audited.items():
            serial = target.split(":", 1)[1] if target.startswith("certificate:") else None
            if serial and any(a in ISSUE_ACTIONS and o == "success" for a, o in entries) and serial not in by_serial:
                problems.append(f"{serial}: audit entry for a certificate with no row")
    return problems


def audit_violations(rt: Any) -> list[str]:
    result = rt.audit.verify(rt.db)
    return [] if result.ok else [f"audit chain broken at {result.first_broken_seq}: {result.reason}"]


def counts(rt: Any) -> dict[str, int]:
    """Row counts worth comparing before/after a failed operation."""
    from sqlalchemy import func

    from ca.models import Certificate, MaintenanceRecord
    from identity.models import Person

    with rt.db.read() as s:
        status = dict(s.execute(select(Certificate.status, func.count()).group_by(Certificate.status)).all())
        return {
            "audit": s.execute(select(func.count()).select_from(AuditEntry)).scalar_one(),
            "persons": s.execute(select(func.count()).select_from(Person)).scalar_one(),
            "maintenance": s.execute(select(func.count()).select_from(MaintenanceRecord)).scalar_one(),
            **{f"cert_{k}": v for k, v in status.items()},
        }
