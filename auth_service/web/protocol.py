"""The OpenID Connect / OAuth 2.0 endpoints.

Bodies are read here (``async``), then the work — database and HSM — runs in the thread pool, never
on the event loop. OAuth endpoints answer RFC 6749 error JSON (what RP libraries parse); malformed
HTTP (wrong media type, oversized body) is an RFC 9457 problem like everywhere else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from auth_service import sessions as sessions_mod
from auth_service.oidc import authorize as authz
from auth_service.oidc import discovery, introspection, logout, revocation, tokens, userinfo
from auth_service.oidc.client_auth import ClientCache, authenticate_client
from auth_service.oidc.errors import NO_STORE, OAuthError
from auth_service.oidc.jwks import KeyRing
from auth_service.service import ClientView
from auth_service.web.browser import Browser, DuplicateField, parse_form
from core import metrics
from core.errors import Problem
from core.runtime import Runtime

router = APIRouter(tags=["oidc"])

MAX_QUERY = 8192


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=NO_STORE)


async def _oauth_form(request: Request) -> dict[str, str]:
    body = await request.body()
    try:
        return parse_form(body, request.headers.get("content-type"))
    except DuplicateField as exc:
        raise OAuthError("invalid_request", f"parameter {exc.name!r} is repeated") from None
    except Problem as exc:
        raise OAuthError("invalid_request", exc.detail, status=exc.status) from None


def _oauth(handler: Any) -> Any:
    """Run an endpoint body, answering OAuthError as RFC 6749 error JSON."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as exc:
            return exc.response()
        except Problem as exc:
            if exc.status >= 500:  # an outage stays a problem document (503 + Retry-After)
                raise
            # A 4xx from below (e.g. a value the database refuses): still RFC 6749 error JSON here.
            error = "invalid_client" if exc.status == 401 else "invalid_request"
            return OAuthError(error, exc.detail, status=exc.status, headers=exc.headers).response()

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


# -- metadata --------------------------------------------------------------------------------------


@router.get("/.well-known/openid-configuration")
def openid_configuration(request: Request) -> JSONResponse:
    """OpenID Provider metadata (Discovery 1.0)."""
    return JSONResponse(discovery.metadata(_rt(request)), headers={"Cache-Control": "public, max-age=3600"})


@router.get("/.well-known/oauth-authorization-server")
def oauth_metadata(request: Request) -> JSONResponse:
    """RFC 8414 metadata (the same document)."""
    return JSONResponse(discovery.metadata(_rt(request)), headers={"Cache-Control": "public, max-age=3600"})


@router.get("/oidc/jwks")
def jwks(request: Request) -> Response:
    """The public signing keys (JWK Set), current and previous."""
    body = KeyRing.of(_rt(request)).jwks_json()
    return Response(body, media_type="application/jwk-set+json", headers={"Cache-Control": "public, max-age=300"})


# -- authorization endpoint ------------------------------------------------------------------------


def _authorize(rt: Runtime, request: Request, pairs: list[tuple[str, str]], *, post: bool) -> Response:
    browser = Browser(rt, request)
    try:
        client, req = authz.validate_request(rt, pairs)
    except authz.AuthorizeError as exc:
        if exc.redirect_uri is None:
            key = "error.invalid_client" if exc.error == "invalid_client" else "error.invalid_request"
            return browser.render("error.html", status=400, message=browser.t(key, detail=exc.description), error_code=exc.error)
        return browser.redirect(authz.error_redirect(rt, exc), status=303 if post else 302)
    browser.prefer(req.ui_locales)
    return resume(rt, browser, client, req, None, post=post, look_up_session=True)


def resume(
    rt: Runtime,
    browser: Browser,
    client: ClientView,
    req: authz.AuthRequest,
    session: sessions_mod.SessionView | None,
    *,
    post: bool = False,
    state: authz.InteractionState | None = None,
    look_up_session: bool = False,
    db: Session | None = None,
) -> Response:
    """Decide the next step of an authorization request: issue a code, or send the user to log in,
    step up or consent (carrying the request in an interaction bound to this browser).
    ``look_up_session``: find the browser's session inside this transaction (one database session
    for the whole authorization request). ``db``: the caller's transaction to do it in (a login
    completing: session, its audit entry and the code commit together); ``state`` is then saved
    here if the request continues with another page."""
    if db is not None:
        return _resume(rt, db, browser, client, req, session, post=post, state=state, save_state=True)
    with rt.db.transaction() as db:
        if look_up_session:
            session = sessions_mod.current_session(rt, browser.session_cookie, db=db)
        return _resume(rt, db, browser, client, req, session, post=post, state=state, asynchronous_code=True)


def _resume(
    rt: Runtime,
    db: Session,
    browser: Browser,
    client: ClientView,
    req: authz.AuthRequest,
    session: sessions_mod.SessionView | None,
    *,
    post: bool,
    state: authz.InteractionState | None,
    save_state: bool = False,
    asynchronous_code: bool = False,
) -> Response:
    status = 303 if post else 302
    step = authz.next_step(
        db, client, req, session, authenticated_here=bool(state and state.authenticated), consented_here=bool(state and state.consented)
    )
    if step == authz.ISSUE:
        assert session is not None
        if state is not None:
            authz.drop_interaction(db, state.token)
        url = authz.issue_code(rt, db, client, req, session, asynchronous=asynchronous_code)
        return browser.redirect(url, status=status)
    if "none" in req.prompt:
        err = authz.AuthorizeError(authz.prompt_none_error(step), "user interaction is required", redirect_uri=req.redirect_uri, state=req.state)
        if state is not None:
            authz.drop_interaction(db, state.token)
        return browser.redirect(authz.error_redirect(rt, err), status=status)
    if state is not None and save_state:
        authz.save_interaction(db, state)
    token = state.token if state is not None else authz.create_interaction(db, browser_hash=browser.binding, req=req)
    page = "/sso/consent" if step == authz.CONSENT else "/sso/login"
    return browser.redirect(f"{page}?ia={token}", status=status)


@router.get("/oidc/authorize")
def authorize_get(request: Request) -> Response:
    """Authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2.1)."""
    rt = _rt(request)
    raw = request.url.query
    try:
        if len(raw) > MAX_QUERY:
            raise ValueError("query too long")
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=authz.MAX_PARAMS + 10)
    except ValueError:  # too long or too many fields: nothing in it can be trusted, not even redirect_uri
        browser = Browser(rt, request)
        return browser.render("error.html", status=400, message=browser.t("error.invalid_request", detail="request too large"), error_code="invalid_request")
    return _authorize(rt, request, pairs, post=False)


@router.post("/oidc/authorize")
async def authorize_post(request: Request) -> Response:
    """Authorization endpoint, form-encoded POST (OIDC Core §3.1.2.1)."""
    rt = _rt(request)
    body = await request.body()
    try:
        form = parse_form(body, request.headers.get("content-type"))
    except (DuplicateField, Problem):
        return await run_in_threadpool(lambda: Browser(rt, request).render("error.html", status=400, message="invalid request", error_code="invalid_request"))
    return await run_in_threadpool(_authorize, rt, request, list(form.items()), post=True)


# -- token endpoint --------------------------------------------------------------------------------


def _token(rt: Runtime, request: Request, form: dict[str, str]) -> JSONResponse:
    grant_type = form.get("grant_type", "")
    handler = tokens.GRANTS.get(grant_type)
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    client = authenticate_client(rt, authorization=request.headers.get("authorization"), form=form, endpoint_url=rt.settings.public_url + "/oidc/token")
    if handler is None:
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type[:50]!r} is not supported")
    body = handler(rt, client, form)
    metrics.TOKENS_ISSUED.labels(grant=grant_type).inc()  # handed out (its audit entry is committed)
    return _json(body)


@router.post("/oidc/token")
@_oauth
async def token(request: Request) -> Response:
    """Token endpoint (RFC 6749 §3.2): authorization_code, refresh_token, client_credentials."""
    form = await _oauth_form(request)
    return await run_in_threadpool(_token, _rt(request), request, form)


# -- userinfo ---------------------------------------------------------------------------------------


def _bearer_error(error: str, description: str, status: int) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**NO_STORE, "WWW-Authenticate": f'Bearer realm="eauth", error="{error}", error_description="{description}"'},
    )


def _userinfo(rt: Runtime, access_token: str | None) -> JSONResponse:
    if not access_token:
        return JSONResponse({"error": "invalid_request", "error_description": "an access token is required"}, status_code=401, headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="eauth"'})
    try:
        return _json(userinfo.userinfo(rt, access_token))
    except Problem:
        return _bearer_error("invalid_token", "the access token is invalid, expired or revoked", 401)
    except PermissionError:
        return _bearer_error("insufficient_scope", "the openid scope of a person is required", 403)


def _header_token(request: Request) -> str | None:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@router.get("/oidc/userinfo")
def userinfo_get(request: Request) -> JSONResponse:
    """UserInfo endpoint (OIDC Core §5.3), Bearer token in the Authorization header."""
    return _userinfo(_rt(request), _header_token(request))


@router.post("/oidc/userinfo")
async def userinfo_post(request: Request) -> JSONResponse:
    """UserInfo endpoint; the token may also come in a form body (RFC 6750 §2.2)."""
    token_value = _header_token(request)
    if token_value is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        try:
            token_value = parse_form(await request.body(), request.headers.get("content-type")).get("access_token")
        except (DuplicateField, Problem):
            token_value = None
    return await run_in_threadpool(_userinfo, _rt(request), token_value)


# -- introspection and revocation --------------------------------------------------------------------


def _authenticated(rt: Runtime, request: Request, form: dict[str, str], endpoint: str) -> ClientView:
    return authenticate_client(rt, authorization=request.headers.get("authorization"), form=form, endpoint_url=rt.settings.public_url + endpoint)


def _introspect(rt: Runtime, request: Request, form: dict[str, str]) -> JSONResponse:
    caller = _authenticated(rt, request, form, "/oidc/introspect")
    if caller.public:
        raise OAuthError("invalid_client", "public clients may not introspect tokens")
    if "token" not in form:
        raise OAuthError("invalid_request", "token is required")
    return _json(introspection.introspect(rt, caller, form["token"], form.get("token_type_hint")))


@router.post("/oidc/introspect")
@_oauth
async def introspect(request: Request) -> Response:
    """Token introspection (RFC 7662)."""
    form = await _oauth_form(request)
    return await run_in_threadpool(_introspect, _rt(request), request, form)


def _revoke(rt: Runtime, request: Request, form: dict[str, str]) -> Response:
    caller = _authenticated(rt, request, form, "/oidc/revoke")
    if "token" not in form:
        raise OAuthError("invalid_request", "token is required")
    hint = form.get("token_type_hint")
    if hint is not None and hint not in ("access_token", "refresh_token"):
        raise OAuthError("unsupported_token_type", "token_type_hint must be access_token or refresh_token")
    revocation.revoke(rt, caller, form["token"], hint)
    return Response(status_code=200, headers=NO_STORE)


@router.post("/oidc/revoke")
@_oauth
async def revoke(request: Request) -> Response:
    """Token revocation (RFC 7009)."""
    form = await _oauth_form(request)
    return await run_in_threadpool(_revoke, _rt(request), request, form)


# -- RP-initiated logout ----------------------------------------------------------------------------


def end_session_and_notify(rt: Runtime, session_id: str, actor_person: str, reason: str) -> None:
    from core.security import Actor

    with rt.db.transaction() as db:
        deliveries = sessions_mod.end_session(rt, db, Actor("person", actor_person), session_id=session_id, reason=reason)
    if deliveries:
        logout.Deliverer.of(rt).wake()


def _logout(rt: Runtime, request: Request, params: dict[str, str], *, post: bool) -> Response:
    browser = Browser(rt, request)
    browser.prefer(params.get("ui_locales"))
    hint = params.get("id_token_hint")
    claims = logout.id_token_hint_claims(rt, hint) if hint else None
    if hint and claims is None:
        return browser.render("error.html", status=400, message=browser.t("error.invalid_request", detail="id_token_hint"), error_code="invalid_request")
    client_id = params.get("client_id")
    hint_aud = claims.get("aud") if claims else None
    hint_client = hint_aud if isinstance(hint_aud, str) else (hint_aud[0] if isinstance(hint_aud, list) and hint_aud else None)
    if client_id and hint_client and client_id != hint_client:
        return browser.render("error.html", status=400, message=browser.t("error.invalid_request", detail="client_id"), error_code="invalid_request")
    client = ClientCache.of(rt).get(client_id or hint_client or "") if (client_id or hint_client) else None
    target = params.get("post_logout_redirect_uri")
    if target is not None and (client is None or target not in client.post_logout_redirect_uris):
        return browser.render("error.html", status=400, message=browser.t("error.invalid_request", detail="post_logout_redirect_uri"), error_code="invalid_request")
    after = authz.redirect_with(target, {"state": params.get("state")}) if target else None
    session = sessions_mod.current_session(rt, browser.session_cookie)
    if session is not None:
        confirmed = claims is not None and (claims.get("sid") == session.id or claims.get("sub") == session.person_id)
        if not confirmed:
            # Without proof the RP speaks for this session, ask the user (RP-Initiated Logout §2).
            browser.allow_form_redirect(target)  # checked above against the client's registration
            return browser.render("logout_confirm.html", fields={k: v for k, v in params.items() if k in ("post_logout_redirect_uri", "state", "client_id", "id_token_hint")})
        end_session_and_notify(rt, session.id, session.person_id, "rp_logout")
    response = browser.redirect(after, status=303 if post else 302) if after else browser.render("logged_out.html")
    browser.clear_session(response)
    return response


@router.get("/oidc/logout")
def end_session_get(request: Request) -> Response:
    """End-session endpoint (OIDC RP-Initiated Logout 1.0)."""
    rt = _rt(request)
    try:
        if len(request.url.query) > MAX_QUERY:
            raise ValueError("query too long")
        params = dict(parse_qsl(request.url.query, keep_blank_values=True, max_num_fields=20))
    except ValueError:
        browser = Browser(rt, request)
        return browser.render("error.html", status=400, message=browser.t("error.invalid_request", detail="request too large"), error_code="invalid_request")
    return _logout(rt, request, params, post=False)


@router.post("/oidc/logout")
async def end_session_post(request: Request) -> Response:
    """End-session endpoint, form POST."""
    rt = _rt(request)
    try:
        form = parse_form(await request.body(), request.headers.get("content-type"))
    except (DuplicateField, Problem):
        browser = Browser(rt, request)
        return await run_in_threadpool(lambda: browser.render("error.html", status=400, message=browser.t("error.invalid_request", detail="form"), error_code="invalid_request"))
    return await run_in_threadpool(_logout, rt, request, form, post=True)
