"""Seal and verification commands: ``seal create|list|show|allow|pdf|records`` and ``verify FILE``.

Sealing runs in this process with the HSM key (the CLI acts as the local administrator, audited as
``cli:local-admin``); ``verify`` prints the report (``--json``: the same JSON as the API) and exits
0 for TOTAL-PASSED, 8 for INDETERMINATE and 9 for TOTAL-FAILED, so scripts can branch on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from core.errors import Kind, Problem
from core.security import Actor
from eauth.cli import app, emit
from eauth.cli.platform import runtime

seal_app = typer.Typer(no_args_is_help=True, help="Department seals: create, list, seal PDFs and records")
app.add_typer(seal_app, name="seal")

VERIFY_EXIT = {"TOTAL-PASSED": 0, "INDETERMINATE": 8, "TOTAL-FAILED": 9}


def _read(path: Path, limit: int) -> bytes:
    if str(path) == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        try:
            if path.stat().st_size > limit:
                raise Problem(Kind.TOO_LARGE, "signing.too_large", f"{path} is larger than {limit} bytes")
            data = path.read_bytes()
        except FileNotFoundError:
            raise Problem(Kind.NOT_FOUND, "cli.file_not_found", f"no such file: {path}") from None
        except IsADirectoryError:
            raise Problem(Kind.INVALID_INPUT, "cli.not_a_file", f"not a file: {path}") from None
    if len(data) > limit:
        raise Problem(Kind.TOO_LARGE, "signing.too_large", f"input is larger than {limit} bytes")
    return data


def _write(path: Path, data: bytes) -> None:
    if str(path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise Problem(Kind.INVALID_INPUT, "cli.cannot_write", f"cannot write {path}: {exc.strerror}") from None


def _seal_lines(view) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        f"seal:        {view.id}",
        f"name:        {view.name}",
        f"department:  {view.department_name} ({view.department_uscc})",
        f"key:         {view.key_label}",
        f"certificate: {view.cert_serial}",
        f"status:      {view.status}",
        f"clients:     {', '.join(view.clients) or '-'}",
    ]


@seal_app.command("create")
def seal_create(
    name: str = typer.Option(..., help="Seal name, e.g. 行政审批专用章."),
    department: str = typer.Option(..., help="Department: organisation id, USCC or exact name."),
    image: Path | None = typer.Option(None, help="Stamp image (PNG); default: a generated red round seal."),
    client: list[str] = typer.Option([], "--client", help="OAuth client allowed to use the seal (repeatable)."),
) -> None:
    """Create a seal: HSM key seal/<USCC>/<n>, seal certificate, stamp image."""
    from signing import service

    png = _read(image, 2 * 1024 * 1024) if image else None
    with runtime() as rt, rt.db.transaction() as db:
        view = service.create_seal(rt, db, Actor.cli(), name=name, department=department, image_png=png, clients=client)
    emit(view.as_dict(), "\n".join(_seal_lines(view)))


@seal_app.command("list")
def seal_list(department: str | None = typer.Option(None, help="Only this department's seals (organisation id).")) -> None:
    from signing import service

    with runtime() as rt, rt.db.read() as db:
        seals = service.list_seals(db, department_id=department)
    emit([s.as_dict() for s in seals], "\n".join(f"{s.id}  {s.status:8}  {s.name}  {s.department_name}  {s.cert_serial}" for s in seals) or "no seals")


@seal_app.command("show")
def seal_show(seal_id: str = typer.Argument(...)) -> None:
    from signing import service

    with runtime() as rt, rt.db.read() as db:
        view = service.get_seal(db, seal_id)
    emit(view.as_dict() | {"certificate": view.cert_pem}, "\n".join(_seal_lines(view)))


@seal_app.command("allow")
def seal_allow(seal_id: str = typer.Argument(...), client: str = typer.Option(..., "--client", help="OAuth client id.")) -> None:
    """Allow a department system (OAuth client) to use a seal (it also needs the seal:<id> scope)."""
    from signing import service

    with runtime() as rt, rt.db.transaction() as db:
        view = service.allow_client(rt, db, Actor.cli(), seal_id=seal_id, client_id=client)
    emit(view.as_dict(), "\n".join(_seal_lines(view)))


@seal_app.command("pdf")
def seal_pdf(
    input: Path = typer.Argument(..., metavar="IN", help="PDF to seal ('-' for stdin)."),
    output: Path = typer.Argument(..., metavar="OUT", help="Sealed PDF ('-' for stdout)."),
    seal: str = typer.Option(..., "--seal", help="Seal id."),
    level: str = typer.Option("B-LT", "--level", help="B-B | B-T | B-LT | B-LTA"),
    certify: bool = typer.Option(False, "--certify", help="Certification signature (DocMDP)."),
    page: int = typer.Option(-1, help="Page for the visible seal (0-based; -1 = last)."),
    box: str | None = typer.Option(None, help="x1,y1,x2,y2 in points (default: bottom right)."),
    field: str | None = typer.Option(None, help="An existing empty signature field."),
    invisible: bool = typer.Option(False, "--invisible", help="No visible appearance."),
) -> None:
    """Seal a PDF (PAdES) with a department seal."""
    from signing import pades, service
    from signing.web import _box

    options = pades.PadesOptions(level=level, certify=certify, placement=pades.Placement(page=page, box=_box(box), field=field, visible=not invisible))
    with runtime() as rt:
        data = _read(input, rt.settings.max_upload_bytes)
        if options.level != "B-B":
            service.tsa_authority(rt)
        with rt.db.transaction() as db:
            sealed = service.seal_pdf(rt, db, Actor.cli(), seal_id=seal, pdf=data, options=options)
    _write(output, sealed.pdf)
    doc = sealed.document
    info = {"document_id": doc.id, "seal_id": doc.seal_id, "level": doc.level, "sha256": doc.sha256, "size": doc.size, "verify_url": sealed.verify_url, "file": str(output)}
    if str(output) == "-":
        typer.echo(json.dumps(info, ensure_ascii=False), err=True)
    else:
        emit(info, f"sealed {output} ({doc.level}, document {doc.id})\nverify: {sealed.verify_url}")


@seal_app.command("records")
def seal_records(
    input: Path = typer.Argument(..., metavar="JSON", help="A JSON record, or a list of records ('-' for stdin)."),
    seal: str = typer.Option(..., "--seal", help="Seal id."),
    format: str = typer.Option("jws", "--format", help="jws | cms"),
    level: str = typer.Option("B-B", "--level", help="B-B | B-T"),
    detached: bool = typer.Option(False, "--detached", help="JWS with a detached payload."),
) -> None:
    """Seal JSON records; prints one JWS (or base64 CMS) per line."""
    from signing import service

    try:
        doc = json.loads(_read(input, 16 * 1024 * 1024))
    except (ValueError, UnicodeDecodeError):
        raise Problem(Kind.INVALID_INPUT, "signing.bad_json", f"{input} is not JSON") from None
    items = doc if isinstance(doc, list) else [doc]
    with runtime() as rt:
        if level == "B-T":
            service.tsa_authority(rt)
        with rt.db.transaction() as db:
            sealed = service.seal_records(rt, db, Actor.cli(), seal_id=seal, records_=items, format=format, level=level, detached=detached)
    emit([s.as_dict() for s in sealed], "\n".join(s.signature for s in sealed))


@app.command("verify")
def verify(
    file: Path = typer.Argument(..., help="A PDF, a JWS or a CMS signature ('-' for stdin)."),
    detached: Path | None = typer.Option(None, "--detached", help="The signed data of a detached JWS / CMS."),
) -> None:
    """Verify a sealed document; exit 0 TOTAL-PASSED, 8 INDETERMINATE, 9 TOTAL-FAILED."""
    from signing import service

    with runtime() as rt:
        data = _read(file, rt.settings.max_upload_bytes)
        extra = _read(detached, rt.settings.max_upload_bytes) if detached else None
        report = service.verify_document(rt, data, name=file.name, detached=extra)
    lines = [f"{report.indication.value}" + (f" / {report.sub_indication.value}" if report.sub_indication else "") + f"  {file}"]
    for sig in report.signatures:
        sub = f"/{sig.sub_indication.value}" if sig.sub_indication else ""
        who = sig.signer.organisation or sig.signer.name
        lines.append(
            f"  {sig.id}: {sig.indication.value}{sub}  {sig.format} {sig.level or '-'}  {who} · {sig.signer.seal_name or sig.signer.name}  "
            f"{sig.signing_time or '?'} ({sig.signing_time_source})  revocation {sig.revocation.status} ({sig.revocation.source})"
        )
        if sig.coverage is not None:
            lines.append(f"      coverage: {'whole document' if sig.coverage.whole_document else 'revision ' + str(sig.coverage.covered_revision)}; after signing: {sig.coverage.modifications}")
        if sig.reasons:
            lines.append(f"      reasons: {', '.join(sig.reasons)}")
    if report.document.registered_id:
        lines.append(f"  registered here as document {report.document.registered_id} ({report.document.registered_seal}, {report.document.registered_at})")
    emit(report.as_dict(), "\n".join(lines))
    code = VERIFY_EXIT[report.indication.value]
    if code:
        raise SystemExit(code)
