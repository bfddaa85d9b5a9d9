"""Login, second-step, certificate, consent, logout and account pages (server-rendered, no script).

Every form posts a CSRF token; every page is ``no-store``; the CSP forbids inline script and any
third-party origin (``eauth.security_headers``). Texts are Simplified Chinese by default with an
English switch (``?lang=en`` or the language link, remembered in a cookie).
"""

from __future__ import annotations

import base64
import math
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from auth_service import certlogin, login, sessions
from auth_service.oidc import authorize as authz
from auth_service.oidc.client_auth import ClientCache
from auth_service.web.browser import LANG_COOKIE, Browser, DuplicateField, parse_form, safe_next
from auth_service.web.protocol import end_session_and_notify, resume
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor
from identity import service as identity

router = APIRouter(tags=["sso pages"], include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES = {p.name for p in STATIC.iterdir()} if STATIC.is_dir() else set()


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


async def _form(request: Request) -> dict[str, str]:
    try:
        return parse_form(await request.body(), request.headers.get("content-type"))
    except DuplicateField as exc:
        raise Problem(Kind.INVALID_INPUT, "request.repeated_field", f"field {exc.name!r} is repeated") from None


def _client_name(rt: Runtime, state: authz.InteractionState | None) -> str:
    if state is None or state.req is None:
        from auth_service import i18n

        return i18n.translate("zh-CN", "site.name")
    client = ClientCache.of(rt).get(state.req.client_id)
    return client.name if client else state.req.client_id


def _load(rt: Runtime, browser: Browser, token: str | None) -> authz.InteractionState | None:
    with rt.db.read() as db:
        state = authz.load_interaction(db, token, browser.binding)
    if state is not None and state.req is not None:
        browser.prefer(state.req.ui_locales)
        browser.allow_form_redirect(state.req.redirect_uri)  # registered, matched exactly at /authorize
    return state


def _expired(browser: Browser) -> Response:
    return browser.render("error.html", status=400, message=browser.t("login.expired"), error_code="interaction_expired")


def _minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


# -- completing a login ------------------------------------------------------------------------------


def complete_login(rt: Runtime, browser: Browser, state: authz.InteractionState, *, person_id: str, acr: str, amr: list[str]) -> Response:
    """Start (or step up) the session, audit, then continue the authorization request."""
    previous = sessions.current_session(rt, browser.session_cookie)
    client = ClientCache.of(rt).get(state.req.client_id) if state.req is not None else None
    # One transaction: the session, its audit entry and what comes next (the code for the client,
    # or the interaction saved for the next page) commit together, synchronously.
    with rt.db.transaction() as db:
        session, cookie = sessions.start_session(rt, db, person_id=person_id, acr=acr, amr=amr, ip=browser.ip, user_agent=browser.user_agent, previous=previous)
        rt.audit.record(
            db,
            actor=Actor("person", person_id),
            action="sso.login.success",
            target=f"person:{person_id}",
            details={"acr": session.acr, "amr": list(session.amr), "ip": browser.ip, "client": state.req.client_id if state.req else None, "sid": session.id},
        )
        state.person_id, state.amr, state.authenticated = person_id, list(session.amr), True
        if state.req is None:
            authz.drop_interaction(db, state.token)
            response = browser.redirect(safe_next(state.next_path))
        elif client is None or not client.active:
            authz.save_interaction(db, state)
            response = None
        else:
            response = resume(rt, browser, client, state.req, session, post=True, state=state, db=db)
    if response is None:
        return browser.render("error.html", status=400, message=browser.t("error.invalid_client"), error_code="invalid_client")
    browser.set_session(response, cookie)
    return response


def _needs_second_factor(state: authz.InteractionState, first: login.FirstFactor) -> bool:
    """After a password: is a second step due (the account has TOTP, or the RP asked for acr 2)?"""
    if state.req is not None and state.req.required_acr == "2":
        return True
    return first.has_totp


# -- password ---------------------------------------------------------------------------------------


def _login_page(rt: Runtime, browser: Browser, state: authz.InteractionState, *, error: str | None = None, login_name: str = "", status: int = 200) -> Response:
    return browser.render(
        "login.html",
        status=status,
        path=f"/sso/login?ia={state.token}",  # the language switch returns here, also after a POST
        ia=state.token,
        client_name=_client_name(rt, state),
        error=error,
        login_name=login_name or (state.req.login_hint if state.req else "") or "",
        cert_enabled=True,
    )


def _login_get(rt: Runtime, request: Request) -> Response:
    browser = Browser(rt, request)
    state = _load(rt, browser, request.query_params.get("ia"))
    if state is None:
        return _expired(browser)
    session = sessions.current_session(rt, browser.session_cookie)
    if session is not None and state.req is not None:
        client = ClientCache.of(rt).get(state.req.client_id)
        if client is not None:
            with rt.db.read() as db:
                step = authz.next_step(db, client, state.req, session, authenticated_here=state.authenticated, consented_here=state.consented)
            if step == authz.STEP_UP:
                with rt.db.transaction() as db:
                    state.person_id, state.amr = session.person_id, list(session.amr)
                    authz.save_interaction(db, state)
                return browser.redirect(f"/sso/login/otp?ia={state.token}", status=302)
            if step != authz.LOGIN:
                return resume(rt, browser, client, state.req, session, state=state)
    return _login_page(rt, browser, state)


@router.get("/sso/login")
def login_get(request: Request) -> Response:
    return _login_get(_rt(request), request)


def _login_post(rt: Runtime, request: Request, form: dict[str, str]) -> Response:
    browser = Browser(rt, request)
    browser.check_csrf(form)
    state = _load(rt, browser, form.get("ia"))
    if state is None:
        return _expired(browser)
    try:
        first = login.check_password(rt, login=form.get("login", ""), password=form.get("password", ""), ip=browser.ip)
    except login.LoginFailed as exc:
        message = browser.t("login.locked", minutes=_minutes(exc.locked_seconds)) if exc.locked_seconds else browser.t("login.failed")
        return _login_page(rt, browser, state, error=message, login_name=form.get("login", "")[:254], status=401 if not exc.locked_seconds else 429)
    state.person_id, state.amr = first.person_id, ["pwd"]
    if _needs_second_factor(state, first):
        with rt.db.transaction() as db:
            authz.save_interaction(db, state)
        return browser.redirect(f"/sso/login/otp?ia={state.token}")
    return complete_login(rt, browser, state, person_id=first.person_id, acr="1", amr=["pwd"])


@router.post("/sso/login")
async def login_post(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_login_post, _rt(request), request, form)


# -- second step -------------------------------------------------------------------------------------


def _otp_page(rt: Runtime, browser: Browser, state: authz.InteractionState, *, error: str | None = None, notice: str | None = None, status: int = 200) -> Response:
    person_id = state.person_id or ""
    with rt.db.read() as db:
        enrolled, recovery_left = login.totp_status(db, person_id)
        person = identity.get_person(db, person_id)
    stepup = state.req is not None and state.req.required_acr == "2"
    return browser.render(
        "otp.html",
        status=status,
        path=f"/sso/login/otp?ia={state.token}",
        ia=state.token,
        client_name=_client_name(rt, state),
        has_totp=enrolled,
        has_recovery=recovery_left > 0,
        has_phone=bool(person.phone_masked),
        stepup=stepup,
        error=error,
        notice=notice,
    )


def _otp_state(rt: Runtime, browser: Browser, token: str | None) -> authz.InteractionState | None:
    state = _load(rt, browser, token)
    if state is None or not state.person_id:
        return None  # the first step (password, or the session being stepped up) names the person
    return state


@router.get("/sso/login/otp")
def otp_get(request: Request) -> Response:
    rt = _rt(request)
    browser = Browser(rt, request)
    state = _otp_state(rt, browser, request.query_params.get("ia"))
    if state is None:
        return _expired(browser)
    return _otp_page(rt, browser, state)


def _otp_post(rt: Runtime, request: Request, form: dict[str, str]) -> Response:
    browser = Browser(rt, request)
    browser.check_csrf(form)
    state = _otp_state(rt, browser, form.get("ia"))
    if state is None or state.person_id is None:
        return _expired(browser)
    method = form.get("method", "totp")
    if method not in ("totp", "recovery", "sms"):
        method = "totp"
    try:
        extra = login.check_second_factor(rt, person_id=state.person_id, code=form.get("code", ""), method=method, ip=browser.ip)
    except login.LoginFailed as exc:
        message = browser.t("login.locked", minutes=_minutes(exc.locked_seconds)) if exc.locked_seconds else browser.t("otp.failed")
        return _otp_page(rt, browser, state, error=message, status=401 if not exc.locked_seconds else 429)
    return complete_login(rt, browser, state, person_id=state.person_id, acr="2", amr=[*state.amr, *extra])


@router.post("/sso/login/otp")
async def otp_post(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_otp_post, _rt(request), request, form)


def _sms_post(rt: Runtime, request: Request, form: dict[str, str]) -> Response:
    browser = Browser(rt, request)
    browser.check_csrf(form)
    state = _otp_state(rt, browser, form.get("ia"))
    if state is None or state.person_id is None:
        return _expired(browser)
    try:
        masked = login.send_sms_code(rt, person_id=state.person_id, ip=browser.ip)
    except Problem as exc:
        status = exc.status if exc.status < 500 else 503
        return _otp_page(rt, browser, state, error=browser.t("account.error", detail=exc.detail), status=status)
    return _otp_page(rt, browser, state, notice=browser.t("otp.sms_sent", phone=masked))


@router.post("/sso/login/sms")
async def sms_post(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_sms_post, _rt(request), request, form)


# -- certificate ----------------------------------------------------------------------------------------


def _cert_post(rt: Runtime, request: Request, form: dict[str, str]) -> Response:
    browser = Browser(rt, request)
    browser.check_csrf(form)
    state = _load(rt, browser, form.get("ia"))
    if state is None:
        return _expired(browser)
    try:
        person_id = certlogin.authenticate(rt, request, ip=browser.ip)
    except certlogin.CertificateRejected as exc:
        message = browser.t("login.cert_failed", reason=exc.reason)
        page = _otp_page if state.person_id else _login_page
        return page(rt, browser, state, error=message, status=401)
    if state.person_id and state.person_id != person_id:
        return _otp_page(rt, browser, state, error=browser.t("login.cert_failed", reason="certificate of another person"), status=401)
    return complete_login(rt, browser, state, person_id=person_id, acr="2", amr=["swk"] if "pwd" not in state.amr else [*state.amr, "swk", "mfa"])


@router.post("/sso/login/cert")
async def cert_post(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_cert_post, _rt(request), request, form)


# -- consent ------------------------------------------------------------------------------------------


def _consent_state(rt: Runtime, browser: Browser, token: str | None) -> tuple[authz.InteractionState, sessions.SessionView] | None:
    state = _load(rt, browser, token)
    session = sessions.current_session(rt, browser.session_cookie)
    if state is None or state.req is None or session is None:
        return None
    return state, session


@router.get("/sso/consent")
def consent_get(request: Request) -> Response:
    rt = _rt(request)
    browser = Browser(rt, request)
    found = _consent_state(rt, browser, request.query_params.get("ia"))
    if found is None:
        return _expired(browser)
    state, _session = found
    assert state.req is not None
    scopes = [s for s in state.req.scope]
    return browser.render("consent.html", ia=state.token, client_name=_client_name(rt, state), scopes=scopes)


def _consent_post(rt: Runtime, request: Request, form: dict[str, str]) -> Response:
    browser = Browser(rt, request)
    browser.check_csrf(form)
    found = _consent_state(rt, browser, form.get("ia"))
    if found is None:
        return _expired(browser)
    state, session = found
    assert state.req is not None
    client = ClientCache.of(rt).get(state.req.client_id)
    if client is None or not client.active:
        return browser.render("error.html", status=400, message=browser.t("error.invalid_client"), error_code="invalid_client")
    if form.get("decision") != "allow":
        with rt.db.transaction() as db:
            authz.drop_interaction(db, state.token)
            rt.audit.record(db, actor=Actor("person", session.person_id), action="sso.consent.deny", target=f"client:{client.client_id}")
        err = authz.AuthorizeError("access_denied", "the user denied the request", redirect_uri=state.req.redirect_uri, state=state.req.state)
        return browser.redirect(authz.error_redirect(rt, err))
    with rt.db.transaction() as db:
        authz.record_consent(rt, db, person_id=session.person_id, client_id=client.client_id, scopes=state.req.scope)
        state.consented = True
        authz.save_interaction(db, state)
    return resume(rt, browser, client, state.req, session, post=True, state=state)


@router.post("/sso/consent")
async def consent_post(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_consent_post, _rt(request), request, form)


# -- logout (confirmation form) ------------------------------------------------------------------------


def _logout_post(rt: Runtime, request: Request, form: dict[str, str]) -> Response:
    browser = Browser(rt, request)
    browser.check_csrf(form)
    session = sessions.current_session(rt, browser.session_cookie)
    if session is not None:
        end_session_and_notify(rt, session.id, session.person_id, "user_logout")
    target = form.get("post_logout_redirect_uri")
    client = ClientCache.of(rt).get(form.get("client_id", "")) if form.get("client_id") else None
    if target and client is None and form.get("id_token_hint"):
        from auth_service.oidc.logout import id_token_hint_claims

        claims = id_token_hint_claims(rt, form["id_token_hint"]) or {}
        aud = claims.get("aud")
        client = ClientCache.of(rt).get(aud) if isinstance(aud, str) else None
    if target and client is not None and target in client.post_logout_redirect_uris:
        response = browser.redirect(authz.redirect_with(target, {"state": form.get("state")}))
    else:
        response = browser.render("logged_out.html")
    browser.clear_session(response)
    return response


@router.post("/sso/logout")
async def logout_post(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_logout_post, _rt(request), request, form)


# -- account -----------------------------------------------------------------------------------------


def _account_login(rt: Runtime, browser: Browser, next_path: str) -> Response:
    with rt.db.transaction() as db:
        token = authz.create_account_interaction(db, browser_hash=browser.binding, next_path=next_path)
    return browser.redirect(f"/sso/login?ia={token}", status=302)


def _account_page(rt: Runtime, browser: Browser, session: sessions.SessionView, *, error: str | None = None, notice: str | None = None, status: int = 200, **extra: object) -> Response:
    with rt.db.read() as db:
        person = identity.get_person(db, session.person_id)
        live = sessions.list_sessions(db, session.person_id)
        enrolled, left = login.totp_status(db, session.person_id)
    return browser.render(
        "account.html",
        status=status,
        person=person,
        session=session,
        sessions=live,
        totp_enrolled=enrolled,
        recovery_left=left,
        error=error,
        notice=notice,
        **extra,
    )


@router.get("/sso/account")
def account_get(request: Request) -> Response:
    rt = _rt(request)
    browser = Browser(rt, request)
    session = sessions.current_session(rt, browser.session_cookie)
    if session is None:
        return _account_login(rt, browser, "/sso/account")
    return _account_page(rt, browser, session)


def _account_post(rt: Runtime, request: Request, form: dict[str, str], action: str) -> Response:
    browser = Browser(rt, request)
    browser.check_csrf(form)
    session = sessions.current_session(rt, browser.session_cookie)
    if session is None:
        return _account_login(rt, browser, "/sso/account")
    actor = Actor("person", session.person_id)
    try:
        if action == "password":
            with rt.db.transaction() as db:
                login.change_password(rt, db, actor, person_id=session.person_id, current=form.get("current", ""), new=form.get("new", ""))
            return _account_page(rt, browser, session, notice=browser.t("account.password_changed"))
        if action == "end_session":
            target = form.get("sid", "")
            with rt.db.read() as db:
                other = sessions.get_session(db, target)
            if other is None or other.person_id != session.person_id:
                return _account_page(rt, browser, session, error=browser.t("account.error", detail="unknown session"), status=404)
            end_session_and_notify(rt, target, session.person_id, "ended_by_user")
            if target == session.id:
                response = browser.render("logged_out.html")
                browser.clear_session(response)
                return response
            return browser.redirect("/sso/account")
        if action == "otp_start":
            with rt.db.transaction() as db:
                person = identity.get_person(db, session.person_id)
                secret, uri = login.begin_totp_enrolment(rt, db, person_id=session.person_id, account_name=person.id_number_masked)
            qr = "data:image/png;base64," + base64.b64encode(login.qr_png(uri)).decode()
            return browser.render("otp_enrol.html", secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)), qr=qr)
        if action == "otp_confirm":
            with rt.db.transaction() as db:
                codes = login.confirm_totp(rt, db, actor, person_id=session.person_id, code=form.get("code", ""))
            return browser.render("recovery_codes.html", codes=codes)
        if action == "otp_remove":
            with rt.db.transaction() as db:
                login.remove_totp(rt, db, actor, person_id=session.person_id, password=form.get("password", ""))
            return browser.redirect("/sso/account")
        if action == "recovery_codes":
            with rt.db.transaction() as db:
                codes = login.regenerate_recovery_codes(rt, db, actor, person_id=session.person_id)
            return browser.render("recovery_codes.html", codes=codes)
    except Problem as exc:
        if exc.status >= 500:
            raise
        return _account_page(rt, browser, session, error=browser.t("account.error", detail=exc.detail), status=exc.status)
    return _account_page(rt, browser, session, status=404)


def _account_route(action: str):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        form = await _form(request)
        return await run_in_threadpool(_account_post, _rt(request), request, form, action)

    handler.__name__ = f"account_{action}"
    return handler


for _action, _path in (
    ("password", "/sso/account/password"),
    ("end_session", "/sso/account/sessions/end"),
    ("otp_start", "/sso/account/otp/start"),
    ("otp_confirm", "/sso/account/otp/confirm"),
    ("otp_remove", "/sso/account/otp/remove"),
    ("recovery_codes", "/sso/account/recovery-codes"),
):
    router.add_api_route(_path, _account_route(_action), methods=["POST"])


# -- language and static files -------------------------------------------------------------------------


@router.get("/sso/lang")
def switch_language(request: Request) -> Response:
    from auth_service import i18n

    lang = i18n.pick(request.query_params.get("to")) or i18n.DEFAULT
    rt = _rt(request)
    browser = Browser(rt, request)
    response = browser.redirect(safe_next(request.query_params.get("next"), "/sso/account"), status=303)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True, path="/")
    return response


@router.get("/sso/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise Problem(Kind.NOT_FOUND, "sso.static_not_found", "no such file")
    return FileResponse(STATIC / name, headers={"Cache-Control": "public, max-age=86400"})
