"""What the browser-facing pages share: templates, language, cookies, CSRF, the caller's address.

CSRF (OWASP "signed double-submit cookie"): every browser gets a random ``eauth_csrf`` cookie
(HttpOnly, SameSite=Lax); each form carries HMAC(server key, cookie). A cross-site page can neither
read the cookie nor compute the MAC, and SameSite=Lax already keeps the cookie off cross-site
POSTs. The same cookie binds pending login interactions to the browser that started them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from auth_service import i18n
from auth_service.sessions import COOKIE as SESSION_COOKIE
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.settings import read_or_create_secret
from core.web import client_ip

CSRF_COOKIE = "eauth_csrf"
LANG_COOKIE = "eauth_lang"
MAX_FORM_BYTES = 64 * 1024
MAX_FIELDS = 60

# The platform-wide policy (eauth.security_headers), except that ``form-action`` also names the
# relying party a form may end up redirecting to: Chromium applies form-action to the redirects that
# follow a form submission, so a sign-in form whose answer is a 303 to the RP's redirect_uri must
# allow that origin (CSP Level 3 §6.3.1).
CSP_TEMPLATE = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'{extra}; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)
_ORIGIN_HOST = re.compile(r"^[A-Za-z0-9.\-]+$|^\[[0-9A-Fa-f:.]+\]$")

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))


def csrf_key(rt: Runtime) -> bytes:
    key = rt.extensions.get("auth_service.csrf_key")
    if key is None:
        key = read_or_create_secret(rt.settings.secrets_dir / "sso-csrf-key", nbytes=32).encode()
        rt.extensions["auth_service.csrf_key"] = key
    return key


def secure_cookies(rt: Runtime) -> bool:
    return rt.settings.public_url.startswith("https://")


class Browser:
    """Per-request view of the browser: its CSRF cookie (created if missing), language, address."""

    def __init__(self, rt: Runtime, request: Request) -> None:
        self.rt = rt
        self.request = request
        existing = request.cookies.get(CSRF_COOKIE, "")
        self.new_cookie = not (16 <= len(existing) <= 100)
        self.cookie = secrets.token_urlsafe(24) if self.new_cookie else existing
        # The user's own choice (?lang=, then the switch's cookie) wins over an RP's ui_locales hint.
        self.chosen_lang = i18n.pick(request.query_params.get("lang")) or i18n.pick(request.cookies.get(LANG_COOKIE))
        self.lang = self.chosen_lang or i18n.DEFAULT
        self.ip = client_ip(request, rt.settings.trusted_proxies)
        self.user_agent = (request.headers.get("user-agent") or "")[:300]
        self.form_origins: set[str] = set()

    def allow_form_redirect(self, uri: str | None) -> None:
        """Let this page's forms lead (by redirect) to the origin of ``uri`` — a registered redirect or
        post-logout URI, never one taken from the request unchecked."""
        if not uri:
            return
        parts = urlsplit(uri)
        host = parts.netloc.rsplit("@", 1)[-1]
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if parts.scheme in ("http", "https") and _ORIGIN_HOST.match(hostname or ""):
            self.form_origins.add(f"{parts.scheme}://{host}")

    def prefer(self, ui_locales: str | None) -> None:
        """Apply a relying party's ``ui_locales`` (OIDC Core §3.1.2.1) unless the user chose."""
        if not self.chosen_lang:
            self.lang = i18n.pick(ui_locales) or self.lang

    @property
    def binding(self) -> str:
        """What pending interactions are bound to (hash of the CSRF cookie)."""
        return hashlib.sha256(self.cookie.encode()).hexdigest()

    @property
    def csrf_token(self) -> str:
        return hmac.new(csrf_key(self.rt), self.cookie.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, form: dict[str, str]) -> None:
        sent = form.get("csrf_token", "")
        if self.new_cookie or not hmac.compare_digest(sent.encode(), self.csrf_token.encode()):
            raise Problem(Kind.FORBIDDEN, "sso.csrf_failed", "the form is missing its anti-forgery token or it does not match; reload the page and try again")

    @property
    def session_cookie(self) -> str | None:
        return self.request.cookies.get(SESSION_COOKIE)

    def t(self, key: str, **values: object) -> str:
        return i18n.translate(self.lang, key, **values)

    def finish(self, response: Response) -> Response:
        """Attach the CSRF cookie when this browser had none; never cache personal pages."""
        if self.new_cookie:
            response.set_cookie(CSRF_COOKIE, self.cookie, httponly=True, samesite="lax", secure=secure_cookies(self.rt), path="/")
        response.headers.setdefault("Cache-Control", "no-store")
        if self.form_origins:
            response.headers["Content-Security-Policy"] = CSP_TEMPLATE.format(extra="".join(" " + o for o in sorted(self.form_origins)))
        return response

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("error", None)
        context.setdefault("notice", None)
        response = TEMPLATES.TemplateResponse(
            self.request,
            template,
            {"t": self.t, "lang": self.lang, "other_lang": "en" if self.lang == "zh-CN" else "zh-CN", "csrf_token": self.csrf_token, "path": _current(self.request), **context},
            status_code=status,
        )
        return self.finish(response)

    def redirect(self, url: str, status: int = 303) -> Response:
        return self.finish(RedirectResponse(url, status_code=status))

    def set_session(self, response: Response, value: str) -> None:
        response.set_cookie(
            SESSION_COOKIE, value, httponly=True, samesite="lax", secure=secure_cookies(self.rt), path="/",
            max_age=self.rt.settings.session_absolute_hours * 3600,
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies(self.rt))


def _current(request: Request) -> str:
    query = "&".join(f"{k}={v}" for k, v in request.query_params.items() if k != "lang")
    return request.url.path + (f"?{query}" if query else "")


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; repeated fields are an error (RFC 6749 §3.1)."""
    if content_type is None or content_type.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise Problem(Kind.UNSUPPORTED_MEDIA_TYPE, "request.form_expected", "send application/x-www-form-urlencoded")
    if len(body) > MAX_FORM_BYTES:
        raise Problem(Kind.TOO_LARGE, "request.form_too_large", f"forms are limited to {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise Problem(Kind.INVALID_INPUT, "request.bad_form", "the form body is not valid") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise DuplicateField(key)
        form[key] = value
    return form


class DuplicateField(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def safe_next(value: str | None, default: str = "/sso/account") -> str:
    """Only local paths (no scheme, no ``//host``): the language switch must not be an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2000:
        return default
    return value
