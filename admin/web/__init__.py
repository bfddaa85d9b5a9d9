"""HTTP routes of the console (``/admin``, server-rendered) and the admin REST API (``/api/v1``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from admin.web import administration, api, api_ca, api_enrolment, api_seals, audit, auth, certificates, console, dashboard, departments, registry, requests
from core.errors import Kind, Problem
from core.runtime import Runtime

router = APIRouter()
_ASSETS: dict[str, tuple[bytes, str]] = console.load_assets()


@router.get("/admin/static/{name:path}", include_in_schema=False, name="admin_static")
def static(name: str, request: Request) -> Response:
    """The console's own CSS/JS/images (a fixed set read at start-up: no path ever reaches the disk)."""
    asset = _ASSETS.get(name)
    if asset is None:
        raise Problem(Kind.NOT_FOUND, "admin.no_such_asset", "no such file")
    body, ctype = asset
    return Response(body, media_type=ctype, headers={"cache-control": "public, max-age=3600"})


for module in (auth, dashboard, registry, requests, certificates, departments, audit, administration):
    router.include_router(module.router)
router.include_router(api.router)
router.include_router(api_seals.router)
router.include_router(api_ca.router)
router.include_router(api_enrolment.router)


def setup(rt: Runtime) -> None:
    """Per-process start-up: the OIDC relying party is created lazily on first login."""
    auth.relying_party(rt)
