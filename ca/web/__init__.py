"""HTTP routes of the CA: certificates API and CA certificates (``certificates``), OCSP and CRLs
(``status``). ``eauth serve --only ocsp,crl`` mounts only what the status router serves."""

from __future__ import annotations

from fastapi import APIRouter

from ca.web import certificates, status
from core.runtime import Runtime

router = APIRouter()
router.include_router(status.router)
router.include_router(certificates.router)


def setup(rt: Runtime) -> None:
    status.setup(rt)
    certificates.setup(rt)
