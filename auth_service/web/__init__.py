"""HTTP routes of the single sign-on service (mounted by ``eauth.app``).

``protocol`` — the OpenID Connect / OAuth endpoints (discovery, JWKS, authorize, token, userinfo,
introspection, revocation, end-session); ``pages`` — the login, consent and account pages.
"""

from __future__ import annotations

from fastapi import APIRouter

from auth_service.oidc.access_token import install_verifier
from auth_service.oidc.logout import Deliverer
from auth_service.web import pages, protocol
from core.runtime import Runtime

router = APIRouter()
router.include_router(protocol.router)
router.include_router(pages.router)


def setup(rt: Runtime) -> None:
    """Per-process start-up: the access-token verifier every guarded route relies on, and the
    back-channel logout deliverer (which also resumes deliveries left pending by a restart)."""
    install_verifier(rt)
    Deliverer.of(rt).wake()


def teardown(rt: Runtime) -> None:
    """Per-process shutdown: stop the back-channel deliverer thread (pending rows stay queued and
    are resumed by the next start)."""
    found = rt.extensions.get("auth_service.deliverer")
    if found is not None:
        found.stop()


def install(app: object, rt: Runtime) -> None:
    """ASGI layers in front of routing: the token endpoint's fast path."""
    from auth_service.web import fastpath

    fastpath.install(app, rt)
