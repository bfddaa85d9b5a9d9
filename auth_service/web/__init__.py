"""HTTP routes of the single sign-on service (mounted by ``eauth.app``).

``protocol`` — the OpenID Connect / OAuth endpoints (discovery, JWKS, authorize, token, userinfo,
introspection, revocation, end-session); ``pages`` — the login, consent and account pages;
``api`` — the client-administration REST API under ``/api/v1/sso``.
"""

from __future__ import annotations

from fastapi import APIRouter

from auth_service.oidc.access_token import install_verifier
from core.runtime import Runtime

router = APIRouter()


def setup(rt: Runtime) -> None:
    """Per-process start-up: install the access-token verifier every guarded route relies on."""
    install_verifier(rt)
