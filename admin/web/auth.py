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
from admin.web.console import LOGIN_COOKIE, SESSION_COOKIE, ConsoleRoute, Enrolling, render, secure_cookies
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
    try:
        with rt.db.transaction() as db:
            pending = sessions.finish_login(db, state=state, browser_secret=request.cookies.get(LOGIN_COOKIE))
            reg = console_client.registration(rt, db)
    except Problem as exc:  # a page that explains, not a redirect back into the same loop
        return render(request, "login_failed.html", {"problem": exc}, status=exc.status)
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
def logout(request: Request, user: Enrolling, csrf_token: Annotated[str, Form()] = "") -> Response:
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


@router.post("/backchannel-logout", name="admin_backchannel_logout")
async def backchannel_logout(request: Request) -> Response:
    """OpenID Connect Back-Channel Logout 1.0 §2.5: the provider ends the operator's SSO session and
    tells us; the console sessions tied to it end too. Authenticated by the signed logout token."""
    from starlette.concurrency import run_in_threadpool

    rt: Runtime = request.app.state.runtime
    try:
        form = await request.form()
    except Exception as exc:  # noqa: BLE001 - a malformed body is the caller's problem
        raise Problem(Kind.INVALID_INPUT, "console.bad_logout_token", "send logout_token as a form field") from exc
    token = form.get("logout_token")

    def work() -> int:
        with rt.db.transaction() as db:
            reg = console_client.registration(rt, db)
        sub, sid = relying_party(rt).verify_logout_token(token if isinstance(token, str) else "", client_id=reg.client_id)
        with rt.db.transaction() as db:
            if sid:
                return sessions.close_sessions_of_sid(rt, db, sid)
            return sessions.close_sessions_of_person(rt, db, sub or "")

    try:
        await run_in_threadpool(work)
    except Problem as exc:
        # §2.8: an invalid token is answered 400 (JSON: the provider is a machine, not a browser).
        from core.web import problem_response

        return problem_response(exc, request)
    return Response(status_code=200, headers={"cache-control": "no-store"})


# -- first administrator: enrol a second factor and replace the one-time password --------------------


@router.get("/enrol", name="admin_enrol")
def enrol_form(request: Request, user: Enrolling) -> Response:
    if not user.must_enrol:
        return RedirectResponse("/admin", status_code=303)
    return render(request, "enrol.html", {"step": "password"})


@router.post("/enrol", name="admin_enrol_start")
def enrol_start(
    request: Request,
    user: Enrolling,
    current: Annotated[str, Form(max_length=512)] = "",
    new: Annotated[str, Form(max_length=512)] = "",
    repeat: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    """Replace the one-time password, retire the one-time code, and start an authenticator enrolment."""
    import base64

    from auth_service import login

    rt: Runtime = request.app.state.runtime
    if not user.must_enrol:
        return RedirectResponse("/admin", status_code=303)
    try:
        if new != repeat:
            raise Problem(Kind.VALIDATION, "console.passwords_differ", "the two new passwords differ")
        if new == current:
            raise Problem(Kind.VALIDATION, "console.password_unchanged", "choose a password other than the one-time password")
        with rt.db.transaction() as db:
            login.change_password(rt, db, user.actor, person_id=user.person_id, current=current, new=new)
            login.remove_totp(rt, db, user.actor, person_id=user.person_id, password=new)  # and the one-time code
            secret, uri = login.begin_totp_enrolment(rt, db, person_id=user.person_id, account_name=user.display)
    except Problem as exc:
        if exc.status >= 500:
            raise
        return render(request, "enrol.html", {"step": "password", "error": exc}, status=exc.status)
    qr = "data:image/png;base64," + base64.b64encode(_qr_png(uri)).decode()
    return render(request, "enrol.html", {"step": "totp", "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)), "qr": qr})


def _qr_png(text: str) -> bytes:
    import io

    import qrcode

    out = io.BytesIO()
    qrcode.make(text, box_size=5, border=2).save(out, format="PNG")  # Pillow (a dependency)
    return out.getvalue()


@router.post("/enrol/confirm", name="admin_enrol_confirm")
def enrol_confirm(request: Request, user: Enrolling, code: Annotated[str, Form(max_length=20)] = "") -> Response:
    from admin import bootstrap
    from auth_service import login

    rt: Runtime = request.app.state.runtime
    if not user.must_enrol:
        return RedirectResponse("/admin", status_code=303)
    try:
        with rt.db.transaction() as db:
            codes = login.confirm_totp(rt, db, user.actor, person_id=user.person_id, code=code)
            sessions.finish_enrolment(db, user.person_id)
            rt.audit.record(db, actor=user.actor, action="admin.bootstrap.enrolled", target=f"person:{user.person_id}")
    except Problem as exc:
        if exc.status >= 500:
            raise
        return render(request, "enrol.html", {"step": "totp", "error": exc, "retry": True}, status=exc.status)
    bootstrap.credentials_path(rt).unlink(missing_ok=True)  # the one-time credentials are spent
    return render(request, "enrol.html", {"step": "done", "codes": codes})
