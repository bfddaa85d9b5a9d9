"""A department demo app: a tiny Starlette relying party built on Authlib's OAuth client.

It does what a real department system does — its own server-side session (cookie ``demo_<name>``),
``/login`` (auth code + PKCE S256 with state and nonce), ``/callback`` (token request, ID token
checked with joserfc against the provider's JWKS), ``/logout`` (RP-initiated logout with
``id_token_hint``) and ``/backchannel`` (OIDC Back-Channel Logout: verify the logout token, end every
local session of that ``sid``). No code of the provider is imported.
"""

from __future__ import annotations

import html
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwt import JWTClaimsRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.auth_service import rp

EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class LocalSession:
    state: str | None = None
    nonce: str | None = None
    verifier: str | None = None
    user: str | None = None
    sub: str | None = None
    sid: str | None = None
    id_token: str | None = None
    ended_by: str | None = None


@dataclass
class DemoApp:
    name: str
    meta: dict[str, Any]
    client_id: str
    secret: str
    base_url: str
    sessions: dict[str, LocalSession] = field(default_factory=dict)
    logout_tokens: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cookie(self) -> str:
        return "demo_" + self.client_id  # apps share the host 127.0.0.1 (cookies ignore ports)

    def _oauth(self) -> OAuth2Session:
        return rp.session(self.meta, self.client_id, self.secret, scope="openid profile", redirect_uri=self.base_url + "/callback")

    def _local(self, request: Request) -> tuple[str, LocalSession]:
        key = request.cookies.get(self.cookie) or ""
        with self.lock:
            if key not in self.sessions:
                key = secrets.token_urlsafe(16)
                self.sessions[key] = LocalSession()
            return key, self.sessions[key]

    def _respond(self, response: Response, key: str) -> Response:
        response.set_cookie(self.cookie, key, httponly=True, samesite="lax")
        return response

    def home(self, request: Request) -> Response:
        key, local = self._local(request)
        if local.user and not local.ended_by:
            body = f'<h1 id="status">{self.name}: 已登录 {html.escape(local.user)}</h1><p id="sid">{local.sid}</p><a id="logout" href="/logout">退出</a>'
        else:
            note = f'<p id="ended">{local.ended_by}</p>' if local.ended_by else ""
            body = f'<h1 id="status">{self.name}: 未登录</h1>{note}<a id="login" href="/login">登录</a>'
        return self._respond(HTMLResponse(f"<!doctype html><title>{self.name}</title>{body}"), key)

    def login(self, request: Request) -> Response:
        key, local = self._local(request)
        local.verifier, local.nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        url, local.state = self._oauth().create_authorization_url(self.meta["authorization_endpoint"], code_verifier=local.verifier, nonce=local.nonce)
        return self._respond(RedirectResponse(url, status_code=302), key)

    def callback(self, request: Request) -> Response:
        key, local = self._local(request)
        if request.query_params.get("state") != local.state or request.query_params.get("iss") != self.meta["issuer"]:
            return HTMLResponse("state or iss mismatch", status_code=400)
        token = self._oauth().fetch_token(self.meta["token_endpoint"], authorization_response=str(request.url), code_verifier=local.verifier)
        claims = rp.verify_id_token(self.meta, token["id_token"], client_id=self.client_id, nonce=local.nonce, access_token=token["access_token"])
        local.user, local.sub, local.sid, local.id_token, local.ended_by = claims.get("name", claims["sub"]), claims["sub"], claims["sid"], token["id_token"], None
        return self._respond(RedirectResponse("/", status_code=302), key)

    def logout(self, request: Request) -> Response:
        key, local = self._local(request)
        query = {"id_token_hint": local.id_token or "", "post_logout_redirect_uri": self.base_url + "/bye", "state": secrets.token_urlsafe(8)}
        local.user = None
        local.ended_by = "rp_logout"
        return self._respond(RedirectResponse(self.meta["end_session_endpoint"] + "?" + urlencode(query), status_code=302), key)

    def bye(self, request: Request) -> Response:
        return HTMLResponse(f'<!doctype html><title>{self.name}</title><h1 id="bye">{self.name}: 已退出</h1>')

    async def backchannel(self, request: Request) -> Response:
        form = await request.form()
        token = str(form.get("logout_token", ""))
        try:
            decoded = jwt.decode(token, rp.keyset(self.meta), algorithms=["RS256", "ES256"])
            JWTClaimsRegistry(iss={"essential": True, "value": self.meta["issuer"]}, aud={"essential": True, "value": self.client_id}, sid={"essential": True}).validate(decoded.claims)
            if decoded.header.get("typ") != "logout+jwt" or EVENT not in decoded.claims.get("events", {}) or "nonce" in decoded.claims:
                raise ValueError("not a logout token")
        except Exception as exc:  # noqa: BLE001 - §2.8: answer 400 for an invalid token
            return Response(str(exc), status_code=400)
        with self.lock:
            self.logout_tokens.append(decoded.claims)
            for local in self.sessions.values():
                if local.sid == decoded.claims["sid"]:
                    local.ended_by = "backchannel"
                    local.user = None
        return Response(status_code=200, headers={"Cache-Control": "no-store"})

    def asgi(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/", self.home),
                Route("/login", self.login),
                Route("/callback", self.callback),
                Route("/logout", self.logout),
                Route("/bye", self.bye),
                Route("/backchannel", self.backchannel, methods=["POST"]),
            ]
        )
