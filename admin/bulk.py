"""Bulk enrolment: a CSV of subscribers with their CSRs becomes registered persons and submitted
certificate requests, processed in the background while the page shows progress.

CSV columns (UTF-8, header row): ``name,id_number,phone,csr`` — ``csr`` is a PEM block (a quoted
multi-line field) or one line of base64 DER. Each row is its own transaction: a bad row is
reported and never stops or half-writes the others. The upload is kept vault-encrypted (it holds
ID numbers) only until the job ends. Requests still go through approval (four-eyes); an approver
may approve a whole job at once, which approves each request separately.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin import service
from admin.models import BulkJob
from core import clock
from core.errors import Kind, Problem, invalid
from core.pii import mask_text
from core.runtime import Runtime
from core.security import Actor

log = logging.getLogger("eauth.admin.bulk")

COLUMNS = ("name", "id_number", "phone", "csr")
MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
CTX_PAYLOAD = "admin.bulk.payload"


@dataclass(frozen=True)
class JobView:
    id: str
    filename: str
    state: str
    total: int
    processed: int
    failed: int
    results: tuple[dict[str, Any], ...]
    created_by: str
    created_by_name: str
    created_at: str
    finished_at: str | None
    profile: str
    department_id: str | None = None  # staff of this department (a department administrator's upload)


def _view(job: BulkJob) -> JobView:
    results = json.loads(job.results or "[]")
    meta = results[0] if results and "profile" in results[0] else {"profile": ""}
    rows = tuple(r for r in results if "row" in r)
    return JobView(
        job.id, job.filename, job.state, job.total, job.processed, job.failed, rows, job.created_by, job.created_by_name, job.created_at, job.finished_at, meta["profile"],
        meta.get("department"),
    )


def parse_csv(data: bytes) -> list[dict[str, str]]:
    """Rows of the upload; refuses a file that is not UTF-8 CSV with the expected header."""
    if len(data) > MAX_BYTES:
        raise Problem(Kind.TOO_LARGE, "admin.bulk_too_large", f"a bulk file is at most {MAX_BYTES // 1024 // 1024} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid("admin.bulk_not_utf8", "the file is not UTF-8 text", file="not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as exc:  # e.g. a bare carriage return inside the header line
        raise invalid("admin.bulk_bad_csv", f"the CSV is malformed: {exc}", file="malformed") from exc
    missing = [c for c in ("name", "id_number", "csr") if c not in header]
    if missing:
        raise invalid("admin.bulk_bad_header", f"the CSV header lacks {', '.join(missing)} (expected {','.join(COLUMNS)})", file="bad header")
    rows = []
    try:
        for raw in reader:
            row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
            rows.append({c: row.get(c, "") for c in COLUMNS})
            if len(rows) > MAX_ROWS:
                raise invalid("admin.bulk_too_many_rows", f"at most {MAX_ROWS} rows per file", file="too many rows")
    except csv.Error as exc:
        raise invalid("admin.bulk_bad_csv", f"the CSV is malformed: {exc}", file="malformed") from exc
    if not rows:
        raise invalid("admin.bulk_empty", "the file has no rows", file="empty")
    return rows


def _csr_bytes(value: str) -> bytes:
    if "-----BEGIN" in value:
        return value.encode()
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise Problem(Kind.INVALID_INPUT, "admin.bulk_bad_csr", "the csr column is neither PEM nor base64 DER") from exc


def create_job(rt: Runtime, db: Session, actor: Actor, *, filename: str, data: bytes, profile: str, department_id: str | None = None) -> JobView:
    """Queue an upload. With ``department_id`` (a department administrator's staff list) every row
    becomes a member of that department with a ``staff`` certificate request."""
    if department_id is not None:
        from identity import service as identity

        profile = service.STAFF_PROFILE
        identity.get_org(db, department_id)
    if profile not in service.csr_profiles():
        raise invalid("admin.bulk_bad_profile", f"profile must be one of {', '.join(service.csr_profiles())}", profile="unknown")
    rows = parse_csv(data)
    now = clock.now().isoformat(timespec="seconds")
    job = BulkJob(
        id=service._new_id(),
        created_by=actor.ref,
        created_by_name=actor.display or actor.id,
        filename=filename[:200],
        state="queued",
        total=len(rows),
        processed=0,
        failed=0,
        payload_ct=rt.vault.encrypt(json.dumps(rows, ensure_ascii=False), context=CTX_PAYLOAD),
        results=json.dumps([{"profile": profile, **({"department": department_id} if department_id else {})}]),
        created_at=now,
    )
    db.add(job)
    db.flush()
    rt.audit.record(
        db, actor=actor, action="admin.bulk.upload", target=f"bulk:{job.id}", details={"rows": len(rows), "profile": profile, "file": filename[:200], "department": department_id}
    )
    return _view(job)


def get_job(db: Session, job_id: str) -> JobView:
    job = db.get(BulkJob, job_id)
    if job is None:
        raise Problem(Kind.NOT_FOUND, "admin.bulk_not_found", f"no bulk job {job_id}")
    return _view(job)


def list_jobs(db: Session, *, limit: int = 20, department_id: str | None = None) -> list[JobView]:
    jobs = [_view(j) for j in db.execute(select(BulkJob).order_by(BulkJob.created_at.desc()).limit(limit if department_id is None else 500)).scalars()]
    return jobs if department_id is None else [j for j in jobs if j.department_id == department_id][:limit]


def process(rt: Runtime, actor: Actor, job_id: str) -> JobView:
    """Work through a job's rows (the background thread calls this; tests may call it directly)."""
    from identity import service as identity

    with rt.db.transaction() as db:
        job = db.get(BulkJob, job_id)
        if job is None or job.state not in ("queued",):
            raise Problem(Kind.CONFLICT, "admin.bulk_not_queued", "this job is not waiting to run")
        job.state = "running"
        rows = json.loads(rt.vault.decrypt(job.payload_ct, context=CTX_PAYLOAD))
        results = json.loads(job.results)
        profile = results[0]["profile"]
        department = results[0].get("department")
    for n, row in enumerate(rows, start=1):
        outcome: dict[str, Any] = {"row": n}
        try:
            with rt.db.transaction() as db:
                if department:
                    request = service.enrol_staff(
                        rt, db, actor, department_id=department, name=row["name"], id_number=row["id_number"], phone=row["phone"] or None,
                        csr=_csr_bytes(row["csr"]), comment=f"bulk {job_id}",
                    )
                    person = identity.get_person(db, request.subject_id)
                else:
                    person = identity.register_person(rt, db, actor, name=row["name"], id_number=row["id_number"], phone=row["phone"] or None)
                    request = service.create_request(
                        rt, db, actor, type="new", subject_kind="person", subject_id=person.id, profile=profile, csr=_csr_bytes(row["csr"]), comment=f"bulk {job_id}"
                    )
                outcome.update(ok=True, person=person.id, request=request.id, name=person.name)
        except Problem as exc:
            outcome.update(ok=False, code=exc.code, detail=mask_text(exc.detail)[:200])
        with rt.db.transaction() as db:
            job = db.get(BulkJob, job_id)
            assert job is not None
            results.append(outcome)
            job.results = json.dumps(results, ensure_ascii=False)
            job.processed += 1
            job.failed += 0 if outcome.get("ok") else 1
    with rt.db.transaction() as db:
        job = db.get(BulkJob, job_id)
        assert job is not None
        job.state, job.payload_ct, job.finished_at = "finished", "", clock.now().isoformat(timespec="seconds")
        rt.audit.record(db, actor=actor, action="admin.bulk.finish", target=f"bulk:{job_id}", details={"rows": job.total, "failed": job.failed})
        return _view(job)


def start(rt: Runtime, actor: Actor, job_id: str) -> threading.Thread:
    def run() -> None:
        try:
            process(rt, actor, job_id)
        except Exception:  # noqa: BLE001 - a background job must record its failure, not vanish
            log.exception("bulk job failed", extra={"job": job_id})
            with rt.db.transaction() as db:
                job = db.get(BulkJob, job_id)
                if job is not None:
                    job.state, job.payload_ct = "failed", ""

    thread = threading.Thread(target=run, name=f"bulk-{job_id[-6:]}", daemon=True)
    thread.start()
    return thread


def approve_all(rt: Runtime, actor: Actor, job_id: str) -> dict[str, int]:
    """Approve (and so carry out) each submitted request of the job this approver may approve."""
    with rt.db.read() as db:
        job = get_job(db, job_id)
    counts = {"approved": 0, "skipped": 0, "failed": 0}
    for row in job.results:
        if not row.get("ok"):
            continue
        try:
            service.approve_and_execute(rt, actor, row["request"], comment=f"bulk {job_id}")
            counts["approved"] += 1
        except Problem as exc:
            counts["failed" if exc.status >= 500 or exc.code.startswith(("ca.", "csr.", "certificate.")) else "skipped"] += 1
    with rt.db.transaction() as db:
        rt.audit.record(db, actor=actor, action="admin.bulk.approve", target=f"bulk:{job_id}", details=counts)
    return counts
