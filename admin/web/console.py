"""Console plumbing: templates, languages, the operator guard with CSRF, HTML problem pages, assets.

Pages are guarded like the API (a typed dependency on the route), but by the console session
cookie instead of a bearer token: ``user: Annotated[ConsoleUser, Depends(console({Role.APPROVER}))]``.
Unsafe methods also need the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``) and, when the browser sends one, an ``Origin`` of this platform.
"""

from __future__ import annotations

import hmac
import mimetypes
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from admin import i18n
from admin.sessions import ConsoleUser, load_session
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Role

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
SESSION_COOKIE = "eauth_console"
LOGIN_COOKIE = "eauth_console_login"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ENROLMENT_REQUIRED = "console.enrolment_required"

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "svg"]), trim_blocks=True, lstrip_blocks=True)


def secure_cookies(rt: Runtime) -> bool:
    return rt.settings.public_url.startswith("https://")


def language(request: Request) -> str:
    rt: Runtime = request.app.state.runtime
    return i18n.pick(request.query_params.get("lang"), request.cookies.get(i18n.COOKIE), rt.settings.language)


def _url_with(request: Request, **params: str) -> str:
    # the search box's value is left out: it may be a full ID number (kept out of links and history)
    query = {k: v for k, v in request.query_params.items() if k != "q"}
    query.update(params)
    return request.url.path + "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    """Render a console page in the caller's language (and remember a ``?lang=`` choice)."""
    rt: Runtime = request.app.state.runtime
    lang = language(request)
    user: ConsoleUser | None = getattr(request.state, "console_user", None)
    ctx = {
        "request": request,
        "t": i18n.translator(lang),
        "detail": i18n.problem_text(lang),
        "lang": lang,
        "other_lang": "en" if lang == "zh-CN" else "zh-CN",
        "lang_url": lambda code: _url_with(request, lang=code),
        "user": user,
        "csrf": user.csrf_token if user else "",
        "Role": Role,
        "path": request.url.path,
        "public_url": rt.settings.public_url,
    }
    ctx.update(context or {})
    body = _env.get_template(template).render(ctx)
    # same-origin (not the platform's no-referrer): under no-referrer browsers send ``Origin: null``
    # with form posts (Fetch §3.2.5), and the guard's same-origin check would refuse every form.
    response = HTMLResponse(body, status_code=status, headers={"cache-control": "no-store", "referrer-policy": "same-origin", **(headers or {})})
    chosen = request.query_params.get("lang")
    if chosen in i18n.LANGUAGES and chosen != request.cookies.get(i18n.COOKIE):
        response.set_cookie(i18n.COOKIE, chosen, max_age=365 * 86400, httponly=True, samesite="lax", secure=secure_cookies(rt), path="/")
    return response


def render_problem(request: Request, problem: Problem) -> Response:
    if problem.code == ENROLMENT_REQUIRED and request.method in SAFE_METHODS:
        return RedirectResponse("/admin/enrol", status_code=303)
    if problem.status == 401 and request.method in SAFE_METHODS:
        target = request.url.path + (("?" + request.url.query) if request.url.query else "")
        return RedirectResponse("/admin/login?next=" + quote(target, safe=""), status_code=303)
    return render(request, "error.html", {"problem": problem}, status=problem.status, headers=problem.headers)


class ConsoleRoute(APIRoute):
    """Console routes answer problems with an HTML page (or a redirect to sign in) rather than JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except Problem as exc:
                return render_problem(request, exc)
            except RequestValidationError as exc:
                fields = [".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()]
                problem = Problem(Kind.VALIDATION, "request.invalid_fields", "some fields are missing or invalid: " + ", ".join(fields))
                return render_problem(request, problem)

        return handler


# -- the guard -------------------------------------------------------------------------------------


async def _submitted_csrf(request: Request) -> str | None:
    """The CSRF token an unsafe request carries (header, or the form field)."""
    if request.method in SAFE_METHODS:
        return None
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            form = await request.form()
        except Exception:  # noqa: BLE001 - a malformed body is the caller's problem, below
            return None
        value = form.get("csrf_token")
        return value if isinstance(value, str) else None
    return None


def _same_origin(request: Request, rt: Runtime) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # older browsers omit it on same-origin posts; the CSRF token still applies
        return True
    allowed = {_origin(rt.settings.public_url), _origin(str(request.base_url))}
    return origin.rstrip("/") in allowed


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def console(roles: set[Role] | frozenset[Role] = frozenset(), *, enrolment: bool = False) -> Callable[..., ConsoleUser]:
    """A console route guard: a signed-in operator holding any one of ``roles`` (any role if empty).

    The first administrator, until they have enrolled their own second factor, passes only the
    guards made with ``enrolment=True`` (the enrolment pages and sign-out)."""

    def guard(request: Request, submitted: Annotated[str | None, Depends(_submitted_csrf)]) -> ConsoleUser:
        rt: Runtime = request.app.state.runtime
        with rt.db.transaction() as db:
            user = load_session(rt, db, request.cookies.get(SESSION_COOKIE))
        if user is None:
            raise Problem(Kind.UNAUTHENTICATED, "console.login_required", "sign in to the console first")
        request.state.console_user = user
        if request.method not in SAFE_METHODS:
            if not _same_origin(request, rt):
                raise Problem(Kind.FORBIDDEN, "console.cross_origin", "this form was posted from another site")
            if not submitted or not hmac.compare_digest(submitted, user.csrf_token):
                raise Problem(Kind.FORBIDDEN, "console.csrf", "the form has expired or did not come from the console; reload the page and try again")
        if user.must_enrol and not enrolment:
            raise Problem(Kind.FORBIDDEN, ENROLMENT_REQUIRED, "set up your authenticator app and a new password first")
        if roles and not user.has_any(*roles):
            wanted = ", ".join(sorted(r.value for r in roles))
            raise Problem(Kind.FORBIDDEN, "auth.insufficient_role", f"requires one of: {wanted}")
        return user

    guard.eauth_guard = {"console": True, "roles": sorted(r.value for r in roles)}  # type: ignore[attr-defined]
    return guard


AnyOperator = Annotated[ConsoleUser, Depends(console())]
Enrolling = Annotated[ConsoleUser, Depends(console(enrolment=True))]


# -- local assets (no CDN: CSP is default-src 'self') ----------------------------------------------


def load_assets() -> dict[str, tuple[bytes, str]]:
    assets = {}
    for path in STATIC.rglob("*"):
        if path.is_file():
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
                ctype += "; charset=utf-8"
            assets[path.relative_to(STATIC).as_posix()] = (path.read_bytes(), ctype)
    return assets
