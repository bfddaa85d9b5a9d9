"""Enrolment in the API: bulk enrolment (a CSV of subscribers with CSRs, processed in the
background, polled for progress, approved request by request) and department administrators'
staff enrolment — one staff member, or a staff list, always into their own department.

The CSV is the body (``Content-Type: text/csv``), as on the console's upload pages
(``name,id_number,phone,csr``).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from admin import bulk, service
from admin.schemas import _In
from admin.web.api import Approver, DeptAdmin, Officer, _department_scope, raw_body
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Principal, Role
from core.web import RuntimeDep, require

router = APIRouter(prefix="/api/v1", tags=["enrolment"])

JobReader = Annotated[Principal, Depends(require(roles={Role.REGISTRATION_OFFICER, Role.APPROVER, Role.DEPARTMENT_ADMIN, Role.CA_ADMIN}))]
CSV = "text/csv"
_CSV_BODY = {"requestBody": {"required": True, "content": {CSV: {"schema": {"type": "string", "description": "name,id_number,phone,csr"}}}}}


class StaffIn(_In):
    name: str = Field(max_length=200)
    id_number: str = Field(max_length=40)
    csr: str = Field(max_length=32768, description="PKCS#10, PEM")
    phone: str | None = Field(None, max_length=20)
    title: str | None = Field(None, max_length=100)
    department: str | None = Field(None, max_length=64, description="USCC or id; CA administrators only (others: their own department)")


def _job(job: bulk.JobView) -> dict[str, Any]:
    out = dataclasses.asdict(job)
    out["results"] = list(job.results)
    return out


async def _csv_body(request: Request) -> bytes:
    return await raw_body(request, media_type=CSV, limit=bulk.MAX_BYTES, code="admin.bulk", what="CSV file")


def _department(db: Any, principal: Principal, ref: str | None) -> str:
    from identity import service as identity

    scope = _department_scope(principal)
    dept_id = identity.resolve_org(db, ref.strip()).id if ref and ref.strip() else scope
    if dept_id is None:
        raise Problem(Kind.VALIDATION, "admin.department_required", "name the department (USCC or id)")
    if scope is not None and dept_id != scope:
        raise Problem(Kind.FORBIDDEN, "admin.other_department", "this belongs to another department")
    return dept_id


def _queue(rt: Runtime, principal: Principal, *, data: bytes, filename: str, profile: str, department: str | None) -> JSONResponse:
    with rt.db.transaction() as db:
        dept_id = _department(db, principal, department) if department is not None else None
        job = bulk.create_job(rt, db, principal.actor, filename=filename, data=data, profile=profile, department_id=dept_id)
    bulk.start(rt, principal.actor, job.id)
    return JSONResponse(_job(job), status_code=202, headers={"location": f"/api/v1/bulk/{job.id}"})


@router.post("/bulk", status_code=202, openapi_extra=_CSV_BODY)
async def bulk_upload(
    request: Request, principal: Officer, profile: Annotated[str, Query(max_length=32)] = "citizen", filename: Annotated[str, Query(max_length=200)] = "upload.csv"
) -> JSONResponse:
    """Queue a bulk enrolment: each row registers a person and submits a request (four-eyes still
    applies). Poll ``GET /api/v1/bulk/{id}``."""
    rt: Runtime = request.app.state.runtime
    data = await _csv_body(request)
    return await run_in_threadpool(_queue, rt, principal, data=data, filename=filename, profile=profile, department=None)


@router.get("/bulk/{job_id}")
def bulk_job(job_id: str, rt: RuntimeDep, principal: JobReader) -> dict[str, Any]:
    """Progress and per-row results (request ids or problem codes)."""
    with rt.db.read() as db:
        job = bulk.get_job(db, job_id[:32])
    if not (principal.has_role(Role.REGISTRATION_OFFICER) or principal.has_role(Role.APPROVER)):
        scope = _department_scope(principal)
        if job.department_id is None or (scope is not None and job.department_id != scope):
            raise Problem(Kind.FORBIDDEN, "admin.other_department", "this job belongs to the registration desk or another department")
    return _job(job)


@router.post("/bulk/{job_id}/approve")
def bulk_approve(job_id: str, rt: RuntimeDep, principal: Approver) -> dict[str, int]:
    """Approve every request of the job this approver may approve (four-eyes per request)."""
    return bulk.approve_all(rt, principal.actor, job_id[:32])


@router.get("/staff")
def list_staff(rt: RuntimeDep, principal: DeptAdmin, department: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    """The department's staff (masked numbers) with their staff certificates."""
    from ca import service as ca_service
    from identity import service as identity

    with rt.db.read() as db:
        dept_id = _department(db, principal, department)
        items = []
        for m in identity.members_of(db, dept_id):
            person = identity.get_person(db, m.person_id)
            certs = [c.as_dict() for c in ca_service.certificates_of(db, person_id=person.id) if c.profile == service.STAFF_PROFILE]
            items.append({"person_id": person.id, "name": person.name, "id_number_masked": person.id_number_masked, "title": m.title, "certificates": certs})
    return {"department_id": dept_id, "items": items, "total": len(items), "limit": len(items), "offset": 0}


@router.post("/staff", status_code=201)
def enrol_staff(body: StaffIn, rt: RuntimeDep, principal: DeptAdmin) -> JSONResponse:
    """Enrol one staff member into the caller's department: a ``staff`` certificate request for an
    approver."""
    with rt.db.transaction() as db:
        dept_id = _department(db, principal, body.department)
        view = service.enrol_staff(
            rt, db, principal.actor, department_id=dept_id, name=body.name, id_number=body.id_number, phone=body.phone, title=body.title, csr=body.csr
        )
    return JSONResponse(view.as_dict(), status_code=201, headers={"location": f"/api/v1/requests/{view.id}"})


@router.post("/staff/bulk", status_code=202, openapi_extra=_CSV_BODY)
async def staff_bulk(
    request: Request, principal: DeptAdmin, department: Annotated[str | None, Query(max_length=64)] = None, filename: Annotated[str, Query(max_length=200)] = "staff.csv"
) -> JSONResponse:
    """A staff list for the caller's department (rows as for ``/api/v1/bulk``)."""
    rt: Runtime = request.app.state.runtime
    data = await _csv_body(request)
    return await run_in_threadpool(_queue, rt, principal, data=data, filename=filename, profile=service.STAFF_PROFILE, department=department or "")
