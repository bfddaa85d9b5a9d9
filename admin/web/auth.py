"""Operator sign-in to the console through the platform's SSO (OIDC authorization code + PKCE).

``/admin/login`` → provider ``/authorize`` (acr_values=2) → ``/admin/callback`` (code redeemed at the
token endpoint, ID token verified, acr ≥ 2, an active operator) → a *new* server-side session.
``POST /admin/logout`` ends it and continues to the provider's end-session endpoint.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from admin import console_client, sessions
from admin.oidc_rp import RelyingParty, pkce_pair
from admin.web.console import LOGIN_COOKIE, SESSION_COOKIE, AnyOperator, ConsoleRoute, render, secure_cookies
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)


def relying_party(rt: Runtime) -> RelyingParty:
    rp = rt.extensions.get("admin.rp")
    if rp is None:
        rp = rt.extensions["admin.rp"] = RelyingParty(rt.settings.public_url)
    return rp


def _safe_next(target: str | None) -> str:
    """Only a path inside the console (no scheme, no host, no ``//``): no open redirect."""
    if not target or not target.startswith("/admin") or target.startswith("//") or "\\" in target or "\n" in target:
        return "/admin"
    return target


@router.get("/login", name="admin_login")
def login(request: Request, next: str | None = None) -> Response:
    """Start an OIDC login. Also reached by any console page when no session exists."""
    rt: Runtime = request.app.state.runtime
    browser_secret = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    nonce = secrets.token_urlsafe(24)
    with rt.db.transaction() as db:
        reg = console_client.registration(rt, db)
        state = sessions.begin_login(db, browser_secret=browser_secret, nonce=nonce, code_verifier=verifier, return_to=_safe_next(next))
    url = relying_party(rt).authorization_url(
        client_id=reg.client_id, redirect_uri=reg.redirect_uri, state=state, nonce=nonce, code_challenge=challenge, acr_values=sessions.MIN_ACR
    )
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(LOGIN_COOKIE, browser_secret, max_age=600, httponly=True, samesite="lax", secure=secure_cookies(rt), path="/admin")
    return response


@router.get("/callback", name="admin_callback")
def callback(request: Request, state: str = "", code: str = "", error: str = "", error_description: str = "") -> Response:
    rt: Runtime = request.app.state.runtime
    with rt.db.transaction() as db:
        pending = sessions.finish_login(db, state=state, browser_secret=request.cookies.get(LOGIN_COOKIE))
        reg = console_client.registration(rt, db)
    if error:
        problem = Problem(Kind.UNAUTHENTICATED if error != "access_denied" else Kind.FORBIDDEN, "console.sso_error", f"{error}: {error_description}"[:300])
        return render(request, "login_failed.html", {"problem": problem}, status=problem.status)
    if not code or len(code) > 512:
        raise Problem(Kind.INVALID_INPUT, "console.code_missing", "the sign-in service returned no code")
    rp = relying_party(rt)
    tokens = rp.exchange_code(code=code, client_id=reg.client_id, client_secret=reg.client_secret, redirect_uri=reg.redirect_uri, code_verifier=pending.code_verifier)
    id_token = rp.verify_id_token(str(tokens["id_token"]), client_id=reg.client_id, nonce=pending.nonce)
    try:
        with rt.db.transaction() as db:
            value = sessions.open_session(rt, db, person_id=id_token.sub, acr=id_token.acr, sso_sid=id_token.sid, id_token=id_token.raw, amr=id_token.amr)
    except Problem as exc:
        with rt.db.transaction() as db:
            rt.audit.record(
                db, actor=Actor("person", id_token.sub), action="admin.console.login", target=f"person:{id_token.sub}", outcome="failure", details={"code": exc.code, "acr": id_token.acr}
            )
        return render(request, "login_failed.html", {"problem": exc}, status=exc.status)
    response = RedirectResponse(pending.return_to, status_code=303)
    # A fresh id on every login (session fixation): whatever cookie the browser had is replaced.
    response.set_cookie(SESSION_COOKIE, value, httponly=True, samesite="lax", secure=secure_cookies(rt), path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/admin")
    return response


@router.post("/logout", name="admin_logout")
def logout(request: Request, user: AnyOperator, csrf_token: Annotated[str, Form()] = "") -> Response:
    rt: Runtime = request.app.state.runtime
    with rt.db.transaction() as db:
        sessions.close_session(rt, db, user)
        reg = console_client.registration(rt, db)
    target = relying_party(rt).logout_url(id_token_hint=user.id_token, post_logout_redirect_uri=reg.post_logout_redirect_uri, client_id=reg.client_id)
    response = RedirectResponse(target or "/admin/signed-out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/signed-out", name="admin_signed_out")
def signed_out(request: Request) -> Response:
    return render(request, "signed_out.html")
