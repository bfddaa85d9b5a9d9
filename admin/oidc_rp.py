"""The console as an OpenID Connect relying party of the platform's own provider (``auth_service``).

Authorization code flow with PKCE S256 (RFC 7636) and a confidential client (client_secret_basic,
RFC 6749 §2.3.1). Everything about the provider is read from its discovery document (OpenID
Connect Discovery 1.0 §4) at ``<issuer>/.well-known/openid-configuration``; the ID token is checked
as OpenID Connect Core 1.0 §3.1.3.7 says: signature against the provider's JWKS, ``iss``, ``aud``,
``azp``, ``exp``/``iat``, and the ``nonce`` this login sent. The console talks to the provider over
HTTP like any other RP, so it works the same when auth_service runs in another process.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from core.errors import Kind, Problem

DISCOVERY_TTL = 300.0
LEEWAY = 60
ALGORITHMS = ("ES256", "RS256", "PS256", "ES384")
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class VerifiedIdToken:
    """Claims of an ID token whose signature and registered claims verified."""

    sub: str
    acr: str
    amr: tuple[str, ...]
    sid: str | None
    auth_time: int | None
    claims: dict[str, Any]
    raw: str


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) — RFC 7636 §4.1, §4.2."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _unavailable(code: str, detail: str) -> Problem:
    return Problem(Kind.UNAVAILABLE, code, detail)


class RelyingParty:
    """Discovery and JWKS cached per process; one instance per runtime (``rt.extensions``)."""

    def __init__(self, issuer: str, *, timeout: float = 10.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.timeout = timeout
        self._lock = threading.Lock()
        self._meta: tuple[float, ProviderMetadata] | None = None
        self._jwks: tuple[float, dict[str, Any]] | None = None

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=self.timeout, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise _unavailable("console.sso_unreachable", f"the sign-in service is unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise _unavailable("console.sso_unavailable", f"the sign-in service answered {response.status_code} for {url}")
        try:
            data = response.json()
        except ValueError as exc:
            raise _unavailable("console.sso_bad_response", "the sign-in service sent invalid JSON") from exc
        if not isinstance(data, dict):
            raise _unavailable("console.sso_bad_response", "the sign-in service sent unexpected JSON")
        return data

    def metadata(self) -> ProviderMetadata:
        with self._lock:
            if self._meta and time.monotonic() - self._meta[0] < DISCOVERY_TTL:
                return self._meta[1]
        raw = self._get_json(self.issuer + "/.well-known/openid-configuration")
        # Discovery §4.3: the issuer in the document must be exactly the one we asked.
        if raw.get("issuer") != self.issuer:
            raise _unavailable("console.sso_issuer_mismatch", "the discovery document names another issuer")
        try:
            meta = ProviderMetadata(
                issuer=raw["issuer"],
                authorization_endpoint=raw["authorization_endpoint"],
                token_endpoint=raw["token_endpoint"],
                jwks_uri=raw["jwks_uri"],
                end_session_endpoint=raw.get("end_session_endpoint"),
                raw=raw,
            )
        except KeyError as exc:
            raise _unavailable("console.sso_incomplete", f"the discovery document lacks {exc.args[0]}") from exc
        with self._lock:
            self._meta = (time.monotonic(), meta)
        return meta

    def authorization_url(self, *, client_id: str, redirect_uri: str, state: str, nonce: str, code_challenge: str, acr_values: str) -> str:
        meta = self.metadata()
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile",
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "acr_values": acr_values,
        }
        sep = "&" if "?" in meta.authorization_endpoint else "?"
        return meta.authorization_endpoint + sep + urlencode(query)

    def exchange_code(self, *, code: str, client_id: str, client_secret: str | None, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
        """POST to the token endpoint (RFC 6749 §4.1.3); returns the token response."""
        meta = self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": code_verifier}
        auth = None
        if client_secret:
            auth = httpx.BasicAuth(client_id, client_secret)
        else:
            form["client_id"] = client_id
        try:
            response = httpx.post(meta.token_endpoint, data=form, auth=auth, timeout=self.timeout, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise _unavailable("console.sso_unreachable", f"the sign-in service is unreachable ({type(exc).__name__})") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or "id_token" not in body:
            error = body.get("error", response.status_code) if isinstance(body, dict) else response.status_code
            raise Problem(Kind.UNAUTHENTICATED, "console.code_exchange_failed", f"the sign-in could not be completed ({error})")
        return body

    def _keys(self, *, refresh: bool = False) -> dict[str, Any]:
        with self._lock:
            if not refresh and self._jwks and time.monotonic() - self._jwks[0] < DISCOVERY_TTL:
                return self._jwks[1]
        data = self._get_json(self.metadata().jwks_uri)
        with self._lock:
            self._jwks = (time.monotonic(), data)
        return data

    def verify_id_token(self, id_token: str, *, client_id: str, nonce: str, now: float | None = None) -> VerifiedIdToken:
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        def decode(keys: dict[str, Any]) -> Any:
            return jwt.decode(id_token, KeySet.import_key_set(keys), algorithms=list(ALGORITHMS))  # type: ignore[arg-type]

        try:
            try:
                token = decode(self._keys())
            except (JoseError, ValueError):
                token = decode(self._keys(refresh=True))  # a rotated signing key: refetch once
        except (JoseError, ValueError) as exc:
            raise Problem(Kind.UNAUTHENTICATED, "console.bad_id_token", "the ID token signature did not verify") from exc
        claims = dict(token.claims)
        now = time.time() if now is None else now
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]

        def fail(why: str) -> Problem:
            return Problem(Kind.UNAUTHENTICATED, "console.bad_id_token", f"the ID token is not acceptable: {why}")

        if claims.get("iss") != self.metadata().issuer:
            raise fail("wrong issuer")
        if client_id not in auds:
            raise fail("not issued to the console")
        if len(auds) > 1 and claims.get("azp") != client_id:
            raise fail("azp does not name the console")
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < now - LEEWAY:
            raise fail("expired")
        if isinstance(claims.get("iat"), (int, float)) and claims["iat"] > now + LEEWAY:
            raise fail("issued in the future")
        if not nonce or not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise fail("nonce mismatch")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise fail("no subject")
        amr = claims.get("amr") or []
        return VerifiedIdToken(
            sub=sub,
            acr=str(claims.get("acr", "0")),
            amr=tuple(str(a) for a in amr) if isinstance(amr, list) else (),
            sid=claims.get("sid") if isinstance(claims.get("sid"), str) else None,
            auth_time=claims.get("auth_time") if isinstance(claims.get("auth_time"), int) else None,
            claims=claims,
            raw=id_token,
        )

    def verify_logout_token(self, logout_token: str, *, client_id: str, now: float | None = None) -> tuple[str | None, str | None]:
        """A back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.6) → (sub, sid)."""
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        def fail(why: str) -> Problem:
            return Problem(Kind.INVALID_INPUT, "console.bad_logout_token", f"the logout token is not acceptable: {why}")

        if not logout_token or len(logout_token) > 8192:
            raise fail("missing or too long")

        def decode(keys: dict[str, Any]) -> Any:
            return jwt.decode(logout_token, KeySet.import_key_set(keys), algorithms=list(ALGORITHMS))  # type: ignore[arg-type]

        try:
            try:
                token = decode(self._keys())
            except (JoseError, ValueError):
                token = decode(self._keys(refresh=True))
        except (JoseError, ValueError) as exc:
            raise fail("signature") from exc
        claims = dict(token.claims)
        now = time.time() if now is None else now
        aud = claims.get("aud")
        if claims.get("iss") != self.metadata().issuer:
            raise fail("wrong issuer")
        if client_id not in (aud if isinstance(aud, list) else [aud]):
            raise fail("not for the console")
        if not isinstance(claims.get("iat"), (int, float)) or abs(claims["iat"] - now) > 300 + LEEWAY:
            raise fail("stale or future iat")
        if isinstance(claims.get("exp"), (int, float)) and claims["exp"] < now - LEEWAY:
            raise fail("expired")
        events = claims.get("events")
        if not isinstance(events, dict) or LOGOUT_EVENT not in events:
            raise fail("no back-channel logout event")
        if "nonce" in claims:
            raise fail("a nonce is forbidden")  # §2.4: so an ID token cannot pass as a logout token
        sub = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        if not sub and not sid:
            raise fail("neither sub nor sid")
        return sub, sid

    def logout_url(self, *, id_token_hint: str | None, post_logout_redirect_uri: str, client_id: str) -> str | None:
        """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2), when the provider has it."""
        try:
            endpoint = self.metadata().end_session_endpoint
        except Problem:
            return None
        if not endpoint:
            return None
        query = {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": client_id}
        if id_token_hint:
            query["id_token_hint"] = id_token_hint
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)
