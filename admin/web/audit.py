"""The audit log for auditors: search and filter, entry detail, chain verification, export."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response

from admin.sessions import ConsoleUser
from admin.web.console import ConsoleRoute, console, render
from core import audit
from core.errors import Kind, Problem, invalid
from core.runtime import Runtime
from core.security import Role

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

Auditor = Annotated[ConsoleUser, Depends(console({Role.AUDITOR, Role.CA_ADMIN}))]
EXPORT_MAX = 10000
PAGE = 50


def parse_day(value: str, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise invalid("admin.bad_date", f"{field} is not a date (YYYY-MM-DD)", **{field: "not a date"}) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def filters(action: str, actor: str, target: str, since: str, until: str) -> dict[str, object]:
    return {
        "action": action.strip()[:100] or None,
        "actor": actor.strip()[:200] or None,
        "target": target.strip()[:300] or None,
        "since": parse_day(since.strip(), "since"),
        "until": parse_day(until.strip(), "until"),
    }


@router.get("/audit", response_class=HTMLResponse, name="admin_audit")
def audit_list(
    request: Request, user: Auditor, action: str = "", actor: str = "", target: str = "", since: str = "", until: str = "", before: int | None = None
) -> Response:
    rt: Runtime = request.app.state.runtime
    f = filters(action, actor, target, since, until)
    with rt.db.read() as db:
        entries = audit.search(db, **f, limit=PAGE, before_seq=before)  # type: ignore[arg-type]
        names = actor_names(db, {e.actor for e in entries})
    query = {"action": action, "actor": actor, "target": target, "since": since, "until": until}
    return render(request, "audit.html", {"entries": entries, "q": query, "more": len(entries) == PAGE, "names": names})


def actor_names(db, refs: set[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Display names of the people among the actors (``operator:<id>``/``person:<id>``), so an
    auditor reads names; the exact reference stays in the entry (and in a tooltip)."""
    from identity import service as identity

    out = {}
    for ref in refs:
        kind, _, ident = ref.partition(":")
        if kind in ("operator", "person") and 0 < len(ident) <= 32:
            try:
                out[ref] = identity.get_person(db, ident).name
            except Problem:
                continue
    return out


@router.get("/audit/export", name="admin_audit_export")
def audit_export(request: Request, user: Auditor, format: str = "csv", action: str = "", actor: str = "", target: str = "", since: str = "", until: str = "") -> Response:
    """Up to EXPORT_MAX entries matching the filters, newest first, as CSV or JSON. Audited."""
    if format not in ("csv", "json"):
        raise Problem(Kind.INVALID_INPUT, "admin.bad_format", "format is csv or json")
    rt: Runtime = request.app.state.runtime
    f = filters(action, actor, target, since, until)
    with rt.db.transaction() as db:
        entries = audit.search(db, **f, limit=EXPORT_MAX)  # type: ignore[arg-type]
        rt.audit.record(
            db, actor=user.actor, action="admin.audit.export", target="audit", details={"format": format, "entries": len(entries), **{k: str(v) for k, v in f.items() if v}}
        )
    rows = [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "target": e.target, "outcome": e.outcome, "details": e.details, "hash": e.hash} for e in entries]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if format == "json":
        body = json.dumps(rows, ensure_ascii=False, indent=1).encode()
        return Response(body, media_type="application/json", headers={"content-disposition": f'attachment; filename="audit-{stamp}.json"'})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["seq", "at", "actor", "action", "target", "outcome", "details", "hash"])
    for r in rows:
        writer.writerow([r["seq"], r["at"], r["actor"], r["action"], r["target"], r["outcome"], json.dumps(r["details"], ensure_ascii=False, sort_keys=True), r["hash"]])
    return Response(("\ufeff" + out.getvalue()).encode(), media_type="text/csv; charset=utf-8", headers={"content-disposition": f'attachment; filename="audit-{stamp}.csv"'})


@router.post("/audit/verify", response_class=HTMLResponse, name="admin_audit_verify")
def audit_verify(request: Request, user: Auditor) -> Response:
    """Recompute the whole hash chain and check every HSM-signed checkpoint. The result is audited."""
    rt: Runtime = request.app.state.runtime
    result = rt.audit.verify(rt.db)
    with rt.db.transaction() as db:
        rt.audit.record(db, actor=user.actor, action="admin.audit.verify", target="audit", outcome="success" if result.ok else "failure", details=result.as_dict())
    return render(request, "audit_verify.html", {"result": result})


@router.get("/audit/{seq}", response_class=HTMLResponse, name="admin_audit_entry")
def audit_entry(request: Request, user: Auditor, seq: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
    rt: Runtime = request.app.state.runtime
    with rt.db.read() as db:
        found = audit.search(db, before_seq=seq + 1, limit=1)
    if not found or found[0].seq != seq:
        raise Problem(Kind.NOT_FOUND, "admin.audit_entry_not_found", f"no audit entry {seq}")
    return render(request, "audit_entry.html", {"e": found[0], "details": json.dumps(found[0].details, ensure_ascii=False, indent=2, sort_keys=True)})
