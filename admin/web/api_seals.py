"""The seal administration API (``/api/v1/seals/…``): what the console's seal pages do, for
department and CA administrators' access tokens (acr 2) — ask for a new seal (two approvers),
replace its stamp image, allow a department system to use it, disable/enable it, and ask for its
certificate's suspension, resumption or revocation (two approvers). Listing seals and sealing
documents are the signing package's routes.

A department administrator acts on their own department's seals only.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from admin import service
from admin.schemas import _In
from admin.web.api import DeptAdmin, _client_in_scope, _department_scope, raw_body
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Principal, Role
from core.web import RuntimeDep, require

router = APIRouter(prefix="/api/v1/seals", tags=["seals"])

MAX_IMAGE = 2 * 1024 * 1024
PNG = "image/png"
SealReader = Annotated[Principal, Depends(require(roles={Role.DEPARTMENT_ADMIN, Role.CA_ADMIN, Role.AUDITOR}))]


class SealRequestIn(_In):
    name: str = Field(max_length=60)
    department: str | None = Field(None, max_length=64, description="USCC or id; CA administrators only (others: their own department)")
    clients: list[str] = Field(default_factory=list, max_length=50)
    image_png_base64: str | None = Field(None, max_length=2_800_000, description="optional stamp image (PNG, base64); a round stamp is drawn otherwise")
    comment: str = Field("", max_length=2000)


class SealClientIn(_In):
    client_id: str = Field(max_length=64)


class SealStatusIn(_In):
    active: bool


class SealCertificateIn(_In):
    type: Literal["suspension", "resumption", "revocation"]
    reason: str | None = Field(None, max_length=300)
    comment: str = Field("", max_length=2000)


def _in_scope(principal: Principal, department_id: str | None) -> None:
    scope = _department_scope(principal)
    if scope is not None and department_id != scope:
        raise Problem(Kind.FORBIDDEN, "admin.other_department", "this belongs to another department")


def _seal(db: Any, principal: Principal, seal_id: str) -> Any:
    from signing import service as signing_service

    seal = signing_service.get_seal(db, seal_id[:32])
    _in_scope(principal, seal.department_id)
    return seal


@router.post("", status_code=201)
def request_seal(body: SealRequestIn, rt: RuntimeDep, principal: DeptAdmin) -> JSONResponse:
    """Ask for a new seal: its HSM key and certificate are made when two approvers agree."""
    from identity import service as identity

    png = None
    if body.image_png_base64:
        try:
            png = base64.b64decode(body.image_png_base64, validate=True)
        except (binascii.Error, ValueError):
            raise Problem(Kind.VALIDATION, "admin.bad_base64", "image_png_base64 is not base64", fields=[{"name": "image_png_base64", "reason": "not base64"}]) from None
    with rt.db.transaction() as db:
        scope = _department_scope(principal)
        dept_id = identity.resolve_org(db, body.department.strip()).id if body.department and body.department.strip() else scope
        if dept_id is None:
            raise Problem(Kind.VALIDATION, "admin.department_required", "name the department (USCC or id)")
        _in_scope(principal, dept_id)
        view = service.create_request(
            rt, db, principal.actor, type="new", subject_kind="org", subject_id=dept_id, profile=service.SEAL_PROFILE,
            seal_name=body.name, seal_image_png=png, seal_clients=body.clients, comment=body.comment,
        )
    return JSONResponse(view.as_dict(), status_code=201, headers={"location": f"/api/v1/requests/{view.id}"})


@router.get("/{seal_id}/image", response_class=Response, responses={200: {"content": {PNG: {}}, "description": "the stamp image"}})
def seal_image(seal_id: str, rt: RuntimeDep, principal: SealReader) -> Response:
    from signing import service as signing_service

    with rt.db.read() as db:
        seal = signing_service.get_seal(db, seal_id[:32])
        if principal.has_role(Role.DEPARTMENT_ADMIN) and not principal.has_role(Role.CA_ADMIN) and not principal.has_role(Role.AUDITOR):
            _in_scope(principal, seal.department_id)
        png = signing_service.seal_image(db, seal.id)
    return Response(png, media_type=PNG, headers={"cache-control": "private, no-cache"})


async def _png_body(request: Request) -> bytes:
    data = await raw_body(request, media_type=PNG, limit=MAX_IMAGE, code="admin.image", what="seal image")
    if not data:
        raise Problem(Kind.VALIDATION, "admin.image_required", "the body is empty: send a PNG image")
    return data


@router.put(
    "/{seal_id}/image",
    openapi_extra={"requestBody": {"required": True, "content": {PNG: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def replace_seal_image(seal_id: str, request: Request, principal: DeptAdmin) -> dict[str, Any]:
    """Replace the stamp image (raw ``image/png`` body, 32–4096 pixels a side, at most 2 MiB):
    documents sealed from now on show it. Audited with both images' hashes."""
    from signing import service as signing_service

    rt: Runtime = request.app.state.runtime
    png = await _png_body(request)

    def work() -> dict[str, Any]:
        with rt.db.transaction() as db:
            seal = _seal(db, principal, seal_id)
            return signing_service.replace_seal_image(rt, db, principal.actor, seal_id=seal.id, image_png=png).as_dict()

    return await run_in_threadpool(work)


@router.post("/{seal_id}/clients")
def allow_seal_client(seal_id: str, body: SealClientIn, rt: RuntimeDep, principal: DeptAdmin) -> dict[str, Any]:
    """Allow a department system (one of the department's own OIDC clients) to use the seal."""
    from auth_service import service as sso
    from signing import service as signing_service

    with rt.db.transaction() as db:
        seal = _seal(db, principal, seal_id)
        client = sso.get_client(db, body.client_id.strip())
        _client_in_scope(principal, client.department_id, first_party=client.first_party)
        return signing_service.allow_client(rt, db, principal.actor, seal_id=seal.id, client_id=client.client_id).as_dict()


@router.post("/{seal_id}/status")
def set_seal_status(seal_id: str, body: SealStatusIn, rt: RuntimeDep, principal: DeptAdmin) -> dict[str, Any]:
    """Disable (or re-enable) all use of the seal at once; its certificate is untouched."""
    from signing import service as signing_service

    with rt.db.transaction() as db:
        seal = _seal(db, principal, seal_id)
        return signing_service.set_seal_status(rt, db, principal.actor, seal_id=seal.id, active=body.active).as_dict()


@router.post("/{seal_id}/certificate-requests", status_code=201)
def seal_certificate_request(seal_id: str, body: SealCertificateIn, rt: RuntimeDep, principal: DeptAdmin) -> JSONResponse:
    """Ask for the seal certificate's suspension, resumption or revocation (two approvers)."""
    with rt.db.transaction() as db:
        seal = _seal(db, principal, seal_id)
        view = service.create_request(rt, db, principal.actor, type=body.type, target_serial=seal.cert_serial, reason=body.reason, comment=body.comment)
    return JSONResponse(view.as_dict(), status_code=201, headers={"location": f"/api/v1/requests/{view.id}"})

