"""Client authentication at the token, introspection and revocation endpoints.

- ``client_secret_basic`` (RFC 6749 §2.3.1: id and secret form-urlencoded, then HTTP Basic);
- ``client_secret_post`` (RFC 6749 §2.3.1, in the body);
- ``private_key_jwt`` (OIDC Core §9, RFC 7523 §2.2/§3): a JWT signed with a key from the client's
  registered JWK Set, ``iss`` = ``sub`` = client_id, ``aud`` our token endpoint or issuer, short
  ``exp``, ``jti`` never seen before;
- ``none`` for public clients (PKCE then carries the proof).

A client must use the method it registered; presenting two methods is an ``invalid_request``
(RFC 6749 §2.3). Client records are cached per process for a few seconds; a disabled client is also
caught at once by the revocation set (``client:<id>``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from urllib.parse import unquote_plus

from sqlalchemy.exc import IntegrityError

from auth_service import timestamps
from auth_service.models import ClientAssertion
from auth_service.oidc.errors import OAuthError
from auth_service.oidc.jose import JoseError, key_from_jwk, verify_compact
from auth_service.service import ClientView, client_secret_matches, get_client
from core.errors import Problem
from core.runtime import Runtime

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLIENT_TTL_SECONDS = 5.0
# Authlib, pyoidc and most RP libraries sign assertions valid for an hour; the jti is remembered until
# the assertion expires, so a longer window costs only rows (RFC 7523 §3 items 4 and 7).
MAX_ASSERTION_LIFETIME = 3600


class ClientCache:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._entries: dict[str, tuple[float, ClientView | None, str | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, rt: Runtime) -> ClientCache:
        found = rt.extensions.get("auth_service.clients")
        if found is None:
            found = rt.extensions.setdefault("auth_service.clients", cls(rt))
        return found

    def _load(self, client_id: str) -> tuple[float, ClientView | None, str | None]:
        from auth_service.models import Client

        with self._rt.db.read() as db:
            row = db.get(Client, client_id)
            if row is None:
                entry = (time.monotonic(), None, None)
            else:
                entry = (time.monotonic(), get_client(db, client_id), row.secret_hash)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[client_id] = entry
        return entry

    def entry(self, client_id: str, *, fresh: bool = False) -> tuple[ClientView | None, str | None]:
        if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
            return None, None
        hit = self._entries.get(client_id)
        if fresh or hit is None or time.monotonic() - hit[0] > CLIENT_TTL_SECONDS:
            hit = self._load(client_id)
        return hit[1], hit[2]

    def get(self, client_id: str) -> ClientView | None:
        return self.entry(client_id)[0]

    def forget(self, client_id: str) -> None:
        with self._lock:
            self._entries.pop(client_id, None)


def _invalid_client(description: str, *, basic: bool) -> OAuthError:
    headers = {"WWW-Authenticate": 'Basic realm="eauth"'} if basic else {}
    return OAuthError("invalid_client", description, headers=headers)


def _basic_credentials(authorization: str) -> tuple[str, str]:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_request", "unsupported Authorization scheme at this endpoint")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client("malformed Basic credentials", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _invalid_client("malformed Basic credentials", basic=True)
    return unquote_plus(client_id), unquote_plus(secret)


def authenticate_client(rt: Runtime, *, authorization: str | None, form: dict[str, str], endpoint_url: str) -> ClientView:
    """The calling client, authenticated by the method it registered, or ``invalid_client``."""
    cache = ClientCache.of(rt)
    methods = []
    if authorization:
        methods.append("client_secret_basic")
    if form.get("client_secret"):
        methods.append("client_secret_post")
    if form.get("client_assertion") or form.get("client_assertion_type"):
        methods.append("private_key_jwt")
    if len(methods) > 1:
        raise OAuthError("invalid_request", "use exactly one client authentication method")
    method = methods[0] if methods else "none"

    if method == "client_secret_basic":
        client_id, secret = _basic_credentials(authorization or "")
        if form.get("client_id") and form["client_id"] != client_id:
            raise OAuthError("invalid_request", "client_id in the body does not match the Basic credentials")
    elif method == "client_secret_post":
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    elif method == "private_key_jwt":
        return _authenticate_assertion(rt, form, endpoint_url)
    else:
        client_id, secret = form.get("client_id", ""), ""
        if not client_id:
            raise _invalid_client("client authentication is required", basic=True)

    client, stored = cache.entry(client_id)
    if client is not None and method in ("client_secret_basic", "client_secret_post") and not client_secret_matches(stored, secret):
        client, stored = cache.entry(client_id, fresh=True)  # the secret may have been rotated just now
    if client is None or not client.active or _revoked(rt, client.client_id):
        raise _invalid_client("unknown or disabled client", basic=method == "client_secret_basic")
    if client.token_endpoint_auth_method != method:
        raise _invalid_client(f"this client authenticates with {client.token_endpoint_auth_method}", basic=method == "client_secret_basic")
    if method != "none" and not client_secret_matches(stored, secret):
        raise _invalid_client("client authentication failed", basic=method == "client_secret_basic")
    return client


def _revoked(rt: Runtime, client_id: str) -> bool:
    from auth_service.oidc.access_token import RevocationSet

    return RevocationSet.of(rt).revoked("client:" + client_id)


def _authenticate_assertion(rt: Runtime, form: dict[str, str], endpoint_url: str) -> ClientView:
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion", "")
    from auth_service.oidc.jose import parse_compact

    try:
        unverified = parse_compact(assertion).unverified_claims
    except JoseError:
        raise _invalid_client("malformed client assertion", basic=False) from None
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or (form.get("client_id") and form["client_id"] != client_id):
        raise _invalid_client("client assertion issuer does not match", basic=False)
    client = ClientCache.of(rt).get(client_id)
    if client is None or not client.active or _revoked(rt, client_id):
        raise _invalid_client("unknown or disabled client", basic=False)
    if client.token_endpoint_auth_method != "private_key_jwt" or not client.jwks:
        raise _invalid_client(f"this client authenticates with {client.token_endpoint_auth_method}", basic=False)
    keys = []
    for jwk in client.jwks.get("keys", []):
        try:
            keys.append(key_from_jwk(jwk))
        except JoseError:
            continue
    try:
        _header, claims = verify_compact(assertion, keys, algorithms=("RS256", "ES256"))
    except JoseError as exc:
        raise _invalid_client(f"client assertion rejected ({exc.reason})", basic=False) from None
    now = timestamps.epoch()
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if claims.get("sub") != client_id:
        raise _invalid_client("client assertion sub must be the client_id", basic=False)
    if not any(a in (endpoint_url, rt.settings.public_url) for a in audiences):
        raise _invalid_client("client assertion audience is not this server", basic=False)
    exp, jti = claims.get("exp"), claims.get("jti")
    if not isinstance(exp, int) or exp <= now - 30 or exp > now + MAX_ASSERTION_LIFETIME + 60:
        raise _invalid_client("client assertion expired or too long-lived", basic=False)
    if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
        raise _invalid_client("client assertion needs a jti", basic=False)
    digest = hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()
    try:
        with rt.db.transaction() as db:
            db.add(ClientAssertion(jti_hash=digest, client_id=client_id, expires_at=timestamps.stamp(seconds=exp - now + 60)))
    except (IntegrityError, Problem):
        raise _invalid_client("client assertion replayed", basic=False) from None
    return client
