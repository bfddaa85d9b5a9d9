"""Every route of the whole app, enumerated from the app itself, against its guard — over real HTTP.

- Each write route (POST/PUT/PATCH/DELETE) refuses an unauthenticated call: a 401/403 problem (JSON
  for the API, the console's HTML error page for console forms) or a redirect to a login page —
  never a 2xx, never a 5xx. The only exceptions are in ``PUBLIC_WRITES`` below, each with the
  standard that makes it public; those must still answer an empty call with a 4xx, not a 5xx.
- Each ``/admin`` and ``/api/v1`` route carries a guard (``core.web.require`` or
  ``admin.web.console.console``) unless listed in ``UNGUARDED`` with its reason, and refuses a
  caller who is authenticated but holds none of the roles the guard names (an operator holding
  every *other* role): 403 ``auth.insufficient_role``.
- Each console write route refuses a signed-in operator holding every role when the CSRF token is
  missing, and when the form comes from another origin.

The enumeration is the app's own route table, so routes added later (signing, verification …) are
covered without touching this file; a new *unguarded* write or API route fails here until someone
adds it to an allow-list with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from core.security import Role
from tests.admin.conftest import Operator, open_operator

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ALL_ROLES = frozenset(Role)

# Write routes anyone may call, by standard. (method, path regex) → why.
PUBLIC_WRITES: dict[tuple[str, str], str] = {
    ("POST", r"/ocsp"): "RFC 6960 §A.1.1 / RFC 5019: OCSP requests are anonymous",
    ("POST", r"/tsa"): "RFC 3161 §3.4: time-stamp requests over HTTP are anonymous",
    ("POST", r"/verify(/.*)?"): "public verification of sealed documents (anyone holding the document)",
    ("POST", r"/api/v1/verify(/.*)?"): "public verification API (same as the upload page)",
    ("POST", r"/oidc/token"): "RFC 6749 §3.2: the client authenticates in the request itself (refused without it, as 400/401 OAuth errors)",
    ("POST", r"/oidc/authorize"): "OpenID Connect Core §3.1.2.1: authorization requests may be sent by form POST",
    ("POST", r"/oidc/introspect"): "RFC 7662 §2.1: client authentication inside the request (OAuth error JSON)",
    ("POST", r"/oidc/revoke"): "RFC 7009 §2.1: client authentication inside the request (OAuth error JSON)",
    ("POST", r"/oidc/userinfo"): "OpenID Connect Core §5.3.1: bearer token inside the request (RFC 6750 error)",
    ("POST", r"/oidc/logout"): "OpenID Connect RP-Initiated Logout §2: anyone may ask to end their own session",
    ("POST", r"/sso/login(/otp|/sms|/cert)?"): "login forms (bound to a pending authorization and a CSRF cookie)",
    ("POST", r"/sso/consent"): "consent form of a pending authorization (CSRF-bound)",
    ("POST", r"/sso/logout"): "the user's own logout form (CSRF-bound)",
    ("POST", r"/admin/backchannel-logout"): "OpenID Connect Back-Channel Logout §2.5: authenticated by the signed logout token in the body",
}

# /admin and /api/v1 routes without a guard dependency. path regex → why.
UNGUARDED: dict[str, str] = {
    r"/admin/static/.*": "the console's own CSS/JS (no data)",
    r"/admin/login": "starts the OIDC login",
    r"/admin/callback": "the OIDC redirect URI (state + PKCE bound to the browser that started the login)",
    r"/admin/signed-out": "the post-logout page (no data)",
    r"/admin/backchannel-logout": "signed logout token (see PUBLIC_WRITES)",
    r"/api/v1/verify(/.*)?": "public verification (see PUBLIC_WRITES)",
}


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    guards: tuple[dict[str, Any], ...]

    @property
    def console(self) -> bool:
        return any(g.get("console") for g in self.guards)

    @property
    def roles(self) -> frozenset[Role]:
        """The roles any one of which the route's guard accepts (empty: any operator/caller)."""
        found: set[Role] = set()
        for g in self.guards:
            found.update(Role(r) for r in g.get("roles", ()))
        return frozenset(found)

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(s for g in self.guards for s in g.get("scopes", ()))

    def url(self) -> str:
        # Any value fills a path parameter: the guard runs before the handler looks anything up.
        return re.sub(r"\{[^}:]+(:[^}]+)?\}", "00000000deadbeef", self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _guards(dependant: Any) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []

    def walk(dep: Any) -> None:
        guard = getattr(dep.call, "eauth_guard", None)
        if guard is not None:
            out.append(guard)
        for sub in dep.dependencies:
            walk(sub)

    if dependant is not None:
        walk(dependant)
    return tuple(out)


def app_routes(app: Any) -> list[RouteInfo]:
    """Every (method, path) the app serves, with the guards found in its dependency tree."""
    out = []
    for route in iter_route_contexts(app.routes):
        path = route.path
        if not path:
            continue
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            out.append(RouteInfo(method, path, _guards(getattr(route, "dependant", None))))
    return out


def _matches(table: dict[Any, str], method: str, path: str) -> bool:
    for key in table:
        m, pattern = key if isinstance(key, tuple) else (method, key)
        if m == method and re.fullmatch(pattern, path):
            return True
    return False


def is_public_write(r: RouteInfo) -> bool:
    return _matches(PUBLIC_WRITES, r.method, r.path)


def is_guarded_area(r: RouteInfo) -> bool:
    return r.path == "/admin" or r.path.startswith(("/admin/", "/api/v1/", "/api/v1"))


@pytest.fixture(scope="module")
def routes(live) -> list[RouteInfo]:  # type: ignore[no-untyped-def]
    found = app_routes(live.app)
    assert len(found) > 80, "the route enumeration found too few routes"
    return found


class Sessions:
    """Console sessions and API tokens for operators holding a given set of roles (made once)."""

    def __init__(self, rt: Any, url: str) -> None:
        self.rt, self.url = rt, url
        self.ops: dict[frozenset[Role], Operator] = {}
        self.tokens: dict[frozenset[Role], str] = {}

    def operator(self, roles: frozenset[Role]) -> Operator:
        if roles not in self.ops:
            self.ops[roles] = open_operator(self.rt, self.url, roles, name="权限测试")
        return self.ops[roles]

    def token(self, roles: frozenset[Role]) -> str:
        """An access token of an operator holding exactly ``roles`` and no API scope."""
        from admin import console_client
        from auth_service.oidc.access_token import issue_access_token

        if roles not in self.tokens:
            op = self.operator(roles)
            with self.rt.db.read() as db:
                client_id = console_client.registration(self.rt, db).client_id  # a real, active client
            self.tokens[roles] = issue_access_token(self.rt, client_id=client_id, subject=op.person_id, scope="openid", acr="2")[0]
        return self.tokens[roles]

    def close(self) -> None:
        for op in self.ops.values():
            op.http.close()


@pytest.fixture(scope="module")
def sessions(rt, live) -> Iterator[Sessions]:  # type: ignore[no-untyped-def]
    s = Sessions(rt, live.url)
    yield s
    s.close()


def _call(client: httpx.Client, r: RouteInfo, **kw: Any) -> httpx.Response:
    return client.request(r.method, r.url(), **kw)


def _is_login_redirect(resp: httpx.Response) -> bool:
    location = resp.headers.get("location", "")
    return resp.status_code in (302, 303, 307) and re.match(r"^(https?://[^/]+)?/(admin|sso)/login(\?|$)", location) is not None


def _problem_code(resp: httpx.Response) -> str | None:
    if resp.headers.get("content-type", "").startswith("application/problem+json"):
        return resp.json().get("code")
    found = re.search(r'<span class="muted mono">\[([\w.]+)\]</span>', resp.text)  # the console's error page
    return found.group(1) if found else None


# -- the tests --------------------------------------------------------------------------------------


def test_guarded_areas_have_a_guard_on_every_route(routes: list[RouteInfo]) -> None:
    missing = [str(r) for r in routes if is_guarded_area(r) and not r.guards and not _matches(UNGUARDED, r.method, r.path)]
    assert not missing, f"routes under /admin or /api/v1 without a guard dependency: {missing}"
    # and the console's pages use the console guard, the API the token guard
    wrong = [str(r) for r in routes if r.guards and r.path.startswith("/admin") and not r.console]
    wrong += [str(r) for r in routes if r.guards and r.path.startswith("/api/") and r.console]
    assert not wrong, f"routes with the wrong kind of guard: {wrong}"


def test_every_write_route_refuses_an_unauthenticated_call(routes: list[RouteInfo], http: httpx.Client) -> None:
    writes = [r for r in routes if r.method in WRITE_METHODS]
    assert any(r.path.startswith("/admin/") for r in writes) and any(r.path.startswith("/api/v1/") for r in writes)
    failures = []
    for r in writes:
        resp = _call(http, r, data={"x": "1"}, follow_redirects=False)
        if resp.status_code >= 500:
            failures.append(f"{r}: {resp.status_code} (a server error on an unauthenticated call)")
            continue
        if is_public_write(r):
            if 200 <= resp.status_code < 300 and r.path.startswith(("/admin", "/api/v1")):
                failures.append(f"{r}: {resp.status_code} for an empty anonymous call")
            continue
        if resp.status_code in (401, 403) or _is_login_redirect(resp):
            if r.path.startswith("/api/") and resp.headers.get("content-type") != "application/problem+json":
                failures.append(f"{r}: {resp.status_code} without a problem document")
            continue
        failures.append(f"{r}: {resp.status_code} {resp.headers.get('location', '')}")
    assert not failures, "write routes that do not refuse anonymous callers:\n" + "\n".join(failures)


def test_every_guarded_read_refuses_an_unauthenticated_call(routes: list[RouteInfo], http: httpx.Client) -> None:
    failures = []
    for r in routes:
        if r.method in WRITE_METHODS or not r.guards:
            continue
        resp = _call(http, r, follow_redirects=False)
        if r.console:
            ok = _is_login_redirect(resp) and "next=" in resp.headers["location"]
        else:
            ok = resp.status_code == 401 and _problem_code(resp) == "auth.missing_token" and "bearer" in resp.headers.get("www-authenticate", "").lower()
        if not ok:
            failures.append(f"{r}: {resp.status_code} {resp.headers.get('location', '')}")
    assert not failures, "\n".join(failures)


def test_every_admin_and_api_route_refuses_a_caller_without_the_role(routes: list[RouteInfo], sessions: Sessions) -> None:
    """The caller holds every role *except* the ones the route accepts: 403 auth.insufficient_role."""
    checked, failures = 0, []
    for r in routes:
        if not r.guards or not is_guarded_area(r) or not r.roles:
            continue  # any signed-in operator (dashboard, logout), or scopes only
        others = ALL_ROLES - r.roles
        if not others:
            continue
        if r.console:
            op = sessions.operator(frozenset(others))
            data = {"csrf_token": op.csrf} if r.method in WRITE_METHODS else None
            resp = op.http.request(r.method, r.url(), data=data)
        else:
            with httpx.Client(base_url=sessions.url, timeout=30) as client:
                resp = client.request(r.method, r.url(), headers={"authorization": f"Bearer {sessions.token(frozenset(others))}"}, json={})
        checked += 1
        if resp.status_code != 403 or _problem_code(resp) != "auth.insufficient_role":
            failures.append(f"{r} as {sorted(x.value for x in others)}: {resp.status_code} {_problem_code(resp)}")
    assert checked > 40
    assert not failures, "routes that let in a caller without their role:\n" + "\n".join(failures)


def test_scope_guarded_api_routes_refuse_an_operator_without_the_scope(routes: list[RouteInfo], sessions: Sessions) -> None:
    """Routes for department systems (a scope, no role): even an operator holding every role is refused."""
    failures = []
    for r in routes:
        if r.console or not r.guards or r.roles or not r.scopes or not is_guarded_area(r):
            continue
        with httpx.Client(base_url=sessions.url, timeout=30) as client:
            resp = client.request(r.method, r.url(), headers={"authorization": f"Bearer {sessions.token(ALL_ROLES)}"}, json={})
        if resp.status_code != 403 or _problem_code(resp) not in ("auth.insufficient_role", "auth.insufficient_scope"):
            failures.append(f"{r}: {resp.status_code} {_problem_code(resp)}")
    assert not failures, "\n".join(failures)


def test_console_writes_need_the_csrf_token_and_the_same_origin(routes: list[RouteInfo], sessions: Sessions) -> None:
    op = sessions.operator(ALL_ROLES)
    failures = []
    writes = [r for r in routes if r.console and r.method in WRITE_METHODS]
    assert len(writes) > 15
    for r in writes:
        no_token = op.http.request(r.method, r.url(), data={"x": "1"})
        wrong_token = op.http.request(r.method, r.url(), data={"csrf_token": "A" * 43})
        header_elsewhere = op.http.request(r.method, r.url(), data={"csrf_token": op.csrf}, headers={"origin": "https://evil.example"})
        for resp, code in ((no_token, "console.csrf"), (wrong_token, "console.csrf"), (header_elsewhere, "console.cross_origin")):
            if resp.status_code != 403 or _problem_code(resp) != code:
                failures.append(f"{r}: expected 403 {code}, got {resp.status_code} {_problem_code(resp)}")
    assert not failures, "\n".join(failures)


def test_the_allow_lists_name_only_routes_that_exist_or_are_expected(routes: list[RouteInfo]) -> None:
    """Keep the lists honest: an entry that matches no route is either planned (signing's
    verification and TSA routes) or stale."""
    planned = {r"/tsa", r"/verify(/.*)?", r"/api/v1/verify(/.*)?"}
    for key in list(PUBLIC_WRITES) + list(UNGUARDED):
        method, pattern = key if isinstance(key, tuple) else (None, key)
        if pattern in planned:
            continue
        assert any(re.fullmatch(pattern, r.path) and (method is None or r.method == method) for r in routes), f"allow-list entry matches no route: {key}"
