"""Revocation commands: ``cert revoke|suspend|resume`` (on the shared ``cert`` group) and
``crl publish``. Each change is one audited transaction; the OCSP response is re-signed in it, and
a running server re-publishes CRLs within a couple of seconds (``crl publish`` does it now)."""

from __future__ import annotations

from datetime import datetime

import typer

from ca import crl, ocsp, revocation
from ca.models import CertificateAuthority
from core.errors import Kind, Problem
from core.security import Actor
from eauth.cli import app, emit
from eauth.cli.ca import cert_app
from eauth.cli.platform import runtime

crl_app = typer.Typer(no_args_is_help=True, help="Certificate revocation lists")
app.add_typer(crl_app, name="crl")


def _show(change: revocation.StatusChange) -> None:
    text = f"certificate {change.serial}: {change.previous_status} -> {change.status}"
    if change.reason:
        text += f" ({change.reason}, {change.revoked_at})"
    emit(change.as_dict(), text)


def _date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise Problem(Kind.VALIDATION, "revocation.bad_invalidity_date", f"not an ISO 8601 date-time: {value!r}") from None


@cert_app.command("revoke")
def revoke(
    serial: str = typer.Argument(..., help="Serial number (hex)."),
    reason: str = typer.Option(..., "--reason", help="RFC 5280 reason: " + ", ".join(revocation.REVOCATION_REASONS)),
    invalidity_date: str | None = typer.Option(None, "--invalidity-date", help="ISO 8601: when the key became unusable."),
    comment: str | None = typer.Option(None, "--comment", help="Free text for the audit log."),
) -> None:
    """Revoke a certificate permanently."""
    with runtime() as rt, rt.db.transaction() as db:
        change = revocation.revoke(rt, db, Actor.cli(), serial=serial, reason=reason, invalidity_date=_date(invalidity_date), comment=comment)
    _show(change)


@cert_app.command("suspend")
def suspend(serial: str = typer.Argument(..., help="Serial number (hex)."), comment: str | None = typer.Option(None, "--comment")) -> None:
    """Put a certificate on hold (certificateHold)."""
    with runtime() as rt, rt.db.transaction() as db:
        change = revocation.suspend(rt, db, Actor.cli(), serial=serial, comment=comment)
    _show(change)


@cert_app.command("resume")
def resume(serial: str = typer.Argument(..., help="Serial number (hex)."), comment: str | None = typer.Option(None, "--comment")) -> None:
    """Lift a hold."""
    with runtime() as rt, rt.db.transaction() as db:
        change = revocation.resume(rt, db, Actor.cli(), serial=serial, comment=comment)
    _show(change)


@cert_app.command("ocsp")
def ocsp_response(serial: str = typer.Argument(..., help="Serial number (hex)."), out: str = typer.Option("-", "--out", help="File for the DER response.")) -> None:
    """Write the current OCSP response for a certificate (DER)."""
    with runtime() as rt, rt.db.read() as db:
        der = ocsp.response_for(rt, db, serial)
    if out == "-":
        import sys

        sys.stdout.buffer.write(der)
    else:
        with open(out, "wb") as fh:
            fh.write(der)
        emit({"bytes": len(der), "file": out}, f"{len(der)} bytes written to {out}")


@crl_app.command("publish")
def publish(ca: list[str] = typer.Option([], "--ca", help="CA name (repeatable); default: every issuing CA. 'root' is a ceremony.")) -> None:
    """Sign and publish CRLs now (full CRL, plus every shard for an issuing CA)."""
    with runtime() as rt:
        with rt.db.read() as db:
            names = ca or [
                n for n, in db.query(CertificateAuthority.name).filter(CertificateAuthority.is_root.is_(False), CertificateAuthority.der.is_not(None))
            ]
        results = []
        for name in names:
            with rt.db.transaction() as db:
                results += crl.publish_crls(rt, db, Actor.cli(), name, trigger="cli")
    rows = [r.__dict__ for r in results]
    full = [r for r in results if r.scope == crl.FULL]
    emit(rows, "\n".join(f"CRL {r.issuer} #{r.number}: {r.entries} entries, next update {r.next_update} ({rt.settings.public_url}{r.path})" for r in full))
