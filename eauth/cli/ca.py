"""CA commands: ``cert issue|show|download|renew|rekey|modify|expiring|bulk`` and ``ca chain|list|add|
request|import``. ``cert_app`` is shared: the revocation commands (``cert revoke|suspend|resume``)
register on it from ``eauth.cli.revocation``."""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import typer
from cryptography.hazmat.primitives import serialization

from ca import bulk, hierarchy, service
from ca.service import BulkItem, BulkResult
from core.errors import Kind, Problem
from core.security import Actor
from eauth.cli import app, emit, state
from eauth.cli.platform import runtime

cert_app = typer.Typer(no_args_is_help=True, help="Certificates: issue, show, maintain, bulk enrolment")
ca_app = typer.Typer(no_args_is_help=True, help="Certificate authorities")
app.add_typer(cert_app, name="cert")
app.add_typer(ca_app, name="ca")

MAX_FILE = 1024 * 1024


def _read(path: Path, what: str = "csr") -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read(MAX_FILE + 1)
    try:
        if path.stat().st_size > MAX_FILE:
            raise Problem(Kind.TOO_LARGE, f"{what}.too_large", f"{path} is larger than {MAX_FILE} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise Problem(Kind.NOT_FOUND, "cli.file_not_found", f"no such file: {path}") from None
    except IsADirectoryError:
        raise Problem(Kind.INVALID_INPUT, "cli.not_a_file", f"not a file: {path}") from None


def _issued(cert: service.IssuedCertificate) -> None:
    data = {k: v for k, v in asdict(cert).items() if k != "der"} | {"pem": cert.pem}
    emit(data, cert.pem.rstrip("\n"))


@cert_app.command("issue")
def cert_issue(
    profile: str = typer.Option(..., help="citizen | enterprise | staff | seal | server"),
    csr: Path = typer.Option(..., help="PKCS#10 request, PEM or DER ('-' for stdin)."),
    subject_id: str | None = typer.Option(None, "--subject-id", help="Person id, resident ID number, organisation id or USCC."),
    dns: list[str] = typer.Option([], "--dns", help="DNS name (server profile; repeatable)."),
    org: str | None = typer.Option(None, "--org", help="Department, for staff belonging to several."),
    ca_name: str | None = typer.Option(None, "--ca", help="Issuing CA (default: the configured one)."),
) -> None:
    """Issue a certificate; the PEM goes to stdout."""
    data = _read(csr)
    with runtime() as rt, rt.db.transaction() as db:
        cert = service.issue_certificate(rt, db, Actor.cli(), profile=profile, csr=data, subject_id=subject_id, dns_names=dns, ca_name=ca_name, org_id=org)
    _issued(cert)


@cert_app.command("show")
def cert_show(serial: str = typer.Argument(..., help="Serial number (hex).")) -> None:
    """A certificate's record, status and maintenance history."""
    with runtime() as rt, rt.db.read() as db:
        view = service.get_certificate(db, serial)
        history = [asdict(h) for h in service.maintenance_history(db, view.serial)]
    data = view.as_dict() | {"maintenance": history, "pem": view.pem}
    lines = [
        f"serial:     {view.serial}",
        f"status:     {view.status}" + (f" ({view.revocation_reason})" if view.revocation_reason else ""),
        f"profile:    {view.profile}",
        f"issuer:     {view.issuer}",
        f"subject:    {view.subject}",
        f"validity:   {view.not_before} .. {view.not_after}",
        f"sha256:     {view.sha256 or '-'}",
    ]
    if view.replaces_serial:
        lines.append(f"replaces:   {view.replaces_serial} ({view.maintenance_reason})")
    if view.failure:
        lines.append(f"failure:    {view.failure}")
    for h in history:
        lines.append(f"maintenance: {h['at']} {h['kind']} {h['old_serial'] or '-'} -> {h['new_serial']} by {h['operator']}: {h['reason']}")
    emit(data, "\n".join(lines))


@cert_app.command("download")
def cert_download(
    serial: str = typer.Argument(...),
    format: str = typer.Option("pem", help="pem | der | p7b (with chain)"),
    out: Path = typer.Option(..., "--out", help="File to write."),
) -> None:
    """Write the certificate as PEM, DER or a PKCS#7 chain."""
    if format not in ("pem", "der", "p7b"):
        raise Problem(Kind.VALIDATION, "cli.bad_format", "format is pem, der or p7b")
    with runtime() as rt, rt.db.read() as db:
        view, cert = service.get_issued(db, serial)
        body = {
            "pem": lambda: cert.public_bytes(serialization.Encoding.PEM),
            "der": lambda: cert.public_bytes(serialization.Encoding.DER),
            "p7b": lambda: service.pkcs7_chain(rt, db, view.serial),
        }[format]()
    out.write_bytes(body)
    emit({"serial": view.serial, "file": str(out), "bytes": len(body)}, f"wrote {out}")


@cert_app.command("renew")
def cert_renew(serial: str = typer.Argument(...), reason: str = typer.Option("renewal", help="Why (recorded).")) -> None:
    """Same key and subject, new validity; linked to the replaced certificate."""
    with runtime() as rt, rt.db.transaction() as db:
        cert = service.renew(rt, db, Actor.cli(), serial, reason=reason)
    _issued(cert)


@cert_app.command("rekey")
def cert_rekey(serial: str = typer.Argument(...), csr: Path = typer.Option(..., help="New PKCS#10 request."), reason: str = typer.Option("re-key")) -> None:
    """New key (from a new CSR), same subject."""
    data = _read(csr)
    with runtime() as rt, rt.db.transaction() as db:
        cert = service.rekey(rt, db, Actor.cli(), serial, csr=data, reason=reason)
    _issued(cert)


@cert_app.command("modify")
def cert_modify(serial: str = typer.Argument(...), reason: str = typer.Option(..., help="What changed (recorded).")) -> None:
    """Same key, subject re-read from the identity registry."""
    with runtime() as rt, rt.db.transaction() as db:
        cert = service.modify(rt, db, Actor.cli(), serial, reason=reason)
    _issued(cert)


@cert_app.command("expiring")
def cert_expiring(days: int = typer.Option(30, help="Window in days.")) -> None:
    """Expiry report: certificates whose validity ends within DAYS."""
    with runtime() as rt, rt.db.read() as db:
        rows = service.expiring(db, days=days)
    data = [r.as_dict() for r in rows]
    text = "\n".join(f"{r.not_after}  {r.serial}  {r.profile:<10}  {r.subject}" for r in rows) or f"no certificate expires within {days} days"
    emit(data, text)


# -- bulk -------------------------------------------------------------------------------------------

CSR_SUFFIXES = (".csr", ".pem", ".der", ".req")


def _items_from_dir(directory: Path) -> list[BulkItem]:
    """One request per file, named ``<subject-id>.csr`` (subject id = person id, ID number,
    organisation id or USCC)."""
    if not directory.is_dir():
        raise Problem(Kind.NOT_FOUND, "cli.not_a_directory", f"not a directory: {directory}")
    items = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in CSR_SUFFIXES:
            data = path.read_bytes()[: MAX_FILE + 1] if path.stat().st_size <= MAX_FILE else b"x" * (MAX_FILE + 1)
            items.append(BulkItem(path.name, data, path.stem))
    return items


def _items_from_csv(path: Path) -> list[BulkItem]:
    """Columns ``subject_id``, ``csr`` (a file path relative to the CSV, or inline PEM), optional
    ``dns`` (space-separated) and ``org``."""
    items = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"subject_id", "csr"} <= set(reader.fieldnames):
            raise Problem(Kind.VALIDATION, "cli.bad_csv", "the CSV needs the columns subject_id and csr")
        for n, row in enumerate(reader, start=2):
            ref = f"line {n}"
            raw = (row.get("csr") or "").strip()
            if raw.startswith("-----"):
                data = raw.encode()
            else:
                target = (path.parent / raw) if raw else None
                try:
                    data = target.read_bytes() if target is not None and target.is_file() and target.stat().st_size <= MAX_FILE else b""
                except OSError:
                    data = b""
                ref = f"line {n} ({raw})"
            items.append(BulkItem(ref, data, (row.get("subject_id") or "").strip() or None, tuple((row.get("dns") or "").split()), (row.get("org") or "").strip() or None))
    return items


@cert_app.command("bulk")
def cert_bulk(
    profile: str = typer.Option(..., help="Profile for every item (e.g. staff)."),
    directory: Path | None = typer.Option(None, "--dir", help="Directory of <subject-id>.csr files."),
    csv_file: Path | None = typer.Option(None, "--csv", help="CSV with subject_id,csr[,dns,org]."),
    results: Path = typer.Option(Path("bulk-results.jsonl"), "--results", help="Per-item result file (JSON lines)."),
    out_dir: Path | None = typer.Option(None, "--out-dir", help="Write each issued certificate here as <serial>.pem."),
    workers: int = typer.Option(1, min=1, max=32, help="Worker processes."),
    batch_size: int = typer.Option(bulk.DEFAULT_BATCH, "--batch-size", min=1, max=5000),
) -> None:
    """Enrol many subjects at once; a bad request is reported and skipped, never aborts the batch."""
    if (directory is None) == (csv_file is None):
        raise Problem(Kind.VALIDATION, "cli.bulk_source", "give exactly one of --dir or --csv")
    items = _items_from_dir(directory) if directory is not None else _items_from_csv(csv_file)  # type: ignore[arg-type]
    if not items:
        raise Problem(Kind.VALIDATION, "cli.bulk_empty", "no requests found")
    from ca.profiles import get_profile

    get_profile(profile)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    fh = results.open("w", encoding="utf-8")
    show_bar = not state.json_output and sys.stderr.isatty()
    bar_ctx = typer.progressbar(length=len(items), label="issuing", file=sys.stderr) if show_bar else None
    bar = bar_ctx.__enter__() if bar_ctx is not None else None
    done = 0

    def record(result: BulkResult) -> None:
        nonlocal done
        row = {"item": result.ref, "ok": result.ok, "serial": result.serial, "code": result.code, "detail": result.detail}
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        if result.ok and out_dir is not None and result.certificate is not None:
            (out_dir / f"{result.serial}.pem").write_text(result.certificate.pem)
        done += 1
        if bar is not None:
            bar.update(1)
        elif not state.json_output and done % 100 == 0:
            typer.echo(f"  {done}/{len(items)}", err=True)

    try:
        if workers == 1:
            with runtime() as rt:
                summary = bulk.issue_bulk(rt, Actor.cli(), profile=profile, items=items, batch_size=batch_size, on_result=record)
        else:
            from core.settings import load_settings
            from eauth.runtime import build_runtime

            os.environ.setdefault("EAUTH_LOG_FORMAT", "text")
            with runtime() as rt:  # fail fast (token, schema, CA) before spawning workers; then one of them
                with rt.db.read() as db:
                    service.issuing_ca(rt, db)
                summary = bulk.issue_bulk_parallel(
                    load_settings(), build_runtime, Actor.cli(), profile=profile, items=items, workers=workers, batch_size=batch_size, on_result=record, rt=rt
                )
    finally:
        fh.close()
        if bar_ctx is not None:
            bar_ctx.__exit__(None, None, None)
    emit(asdict(summary) | {"results": str(results)}, f"{summary.issued} issued, {summary.failed} failed of {summary.total}; per-item results in {results}")
    if summary.failed:
        raise SystemExit(9 if summary.issued else 2)


# -- CA hierarchy -----------------------------------------------------------------------------------


@ca_app.command("chain")
def ca_chain(ca_name: str | None = typer.Option(None, "--ca", help="Issuing CA (default: the configured one).")) -> None:
    """The issuing CA certificate then the root, PEM."""
    with runtime() as rt, rt.db.read() as db:
        chain = service.ca_chain(rt, db, ca_name)
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
    emit({"chain": pems}, "".join(pems).rstrip("\n"))


@ca_app.command("list")
def ca_list() -> None:
    with runtime() as rt, rt.db.read() as db:
        rows = hierarchy.list_authorities(db)
    emit([asdict(r) for r in rows], "\n".join(f"{r.name:<20} {'root' if r.is_root else 'issuing':<8} {r.key_label:<24} until {r.not_after or '(awaiting signature)'}" for r in rows))


@ca_app.command("add")
def ca_add(name: str = typer.Argument(..., help="Name of the new issuing CA (key ca/<name>)."), key_spec: str | None = typer.Option(None, "--key-spec", help="ec-p256 | ec-p384 | rsa-3072 …")) -> None:
    """Key ceremony for a further issuing CA signed by the root."""
    with runtime() as rt, rt.db.transaction() as db:
        view = hierarchy.create_issuing(rt, db, Actor.cli(), name, key_spec=key_spec)
    emit(asdict(view), f"CA {view.name}: key {view.key_label}, certificate sha256 {view.sha256}")


@ca_app.command("request")
def ca_request(
    name: str = typer.Argument(..., help="Issuing CA to be signed by an external root."),
    out: Path = typer.Option(..., "--out", help="Where to write the PKCS#10 request (PEM)."),
    key_spec: str | None = typer.Option(None, "--key-spec"),
) -> None:
    """Generate the CA key in the token and export a CSR for an external root to sign."""
    with runtime() as rt, rt.db.transaction() as db:
        pem = hierarchy.request_external_issuing(rt, db, Actor.cli(), name, key_spec=key_spec)
    out.write_bytes(pem)
    emit({"name": name, "csr": str(out)}, f"certificate request for CA {name} written to {out}")


@ca_app.command("import")
def ca_import(
    name: str = typer.Argument(...),
    cert: Path = typer.Option(..., "--cert", help="The signed CA certificate."),
    chain: Path = typer.Option(..., "--chain", help="The external root certificate."),
) -> None:
    """Import the externally signed certificate of an issuing CA."""
    with runtime() as rt, rt.db.transaction() as db:
        view = hierarchy.import_external_issuing(rt, db, Actor.cli(), name, _read(cert, "certificate"), _read(chain, "certificate"))
    emit(asdict(view), f"CA {view.name} imported (issuer {view.parent}), certificate sha256 {view.sha256}")
