"""HTTP routes of the CA: certificates API and CA certificates (``certificates``), OCSP, CRLs and
status changes (``status``). ``eauth serve --only ocsp,crl`` mounts only the status router."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from ca.web import certificates, status
from core.runtime import Runtime
from core.web import add_early_answer

router = APIRouter()
router.include_router(status.router)
router.include_router(certificates.router)

STATUS_ONLY = {"ocsp", "crl"}


def _status_only(rt: Runtime) -> bool:
    only = set(rt.settings.serve_only)
    return bool(only & STATUS_ONLY) and not ({"ca", "aia"} & only)


def setup(rt: Runtime) -> None:
    status.setup(rt)
    if not _status_only(rt):
        certificates.setup(rt)


def teardown(rt: Runtime) -> None:
    status.teardown(rt)


def router_for(rt: Runtime) -> APIRouter:
    """The routes this process serves: only OCSP / CRL / status changes under ``--only ocsp,crl``."""
    return status.router if _status_only(rt) else router


def install(app: FastAPI, rt: Runtime) -> None:
    """ASGI layers in front of the framework (added last, so outermost): the OCSP fast path; and the
    OCSP answers the HTTP protocol gives itself from the cache (``eauth.http_protocol``)."""
    app.add_middleware(status.OcspFastPath, rt=rt)
    add_early_answer(app, status.early_answer(rt))
