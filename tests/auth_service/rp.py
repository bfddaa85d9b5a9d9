"""An independent relying party: Authlib's OAuth 2.0 client (requests) and joserfc for JOSE.

Nothing here imports the provider's code: discovery, PKCE, token requests, client authentication
and ID-token/JWT checks are the libraries' own, so the tests exercise the provider as a department
system would.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry


def session(meta: dict[str, Any], client_id: str, secret: str | None = None, **kwargs: Any) -> OAuth2Session:
    kwargs.setdefault("scope", "openid profile")
    kwargs.setdefault("redirect_uri", "http://127.0.0.1:9/cb")
    kwargs.setdefault("code_challenge_method", "S256")
    if secret is None and "token_endpoint_auth_method" not in kwargs:
        kwargs["token_endpoint_auth_method"] = "none"
    return OAuth2Session(client_id, secret, **kwargs)


def authorization_url(meta: dict[str, Any], rp: OAuth2Session, **params: str) -> tuple[str, str, str, str]:
    """``(url, state, nonce, code_verifier)`` for a PKCE S256 request built by Authlib."""
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **params)
    return url, state, nonce, verifier


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def keyset(meta: dict[str, Any]) -> KeySet:
    return KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())


def verify_id_token(meta: dict[str, Any], id_token: str, *, client_id: str, nonce: str | None, access_token: str | None = None) -> dict[str, Any]:
    """OIDC Core §3.1.3.7 checks done with joserfc, independent of the provider's code."""
    token = jwt.decode(id_token, keyset(meta), algorithms=["RS256"])
    assert token.header["alg"] == "RS256" and token.header["kid"]
    options: dict[str, Any] = {
        "iss": {"essential": True, "value": meta["issuer"]},
        "aud": {"essential": True, "value": client_id},
        "sub": {"essential": True},
        "exp": {"essential": True},
        "iat": {"essential": True},
    }
    if nonce is not None:
        options["nonce"] = {"essential": True, "value": nonce}
    JWTClaimsRegistry(**options).validate(token.claims)
    if nonce is None:
        assert "nonce" not in token.claims
    if access_token is not None:  # §3.1.3.6
        digest = hashlib.sha256(access_token.encode()).digest()
        assert token.claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    return token.claims


def verify_access_token(meta: dict[str, Any], access_token: str, *, client_id: str) -> dict[str, Any]:
    """RFC 9068 §4 checks: ``typ: at+jwt``, signature by a published key, iss/aud/exp/iat/jti."""
    token = jwt.decode(access_token, keyset(meta), algorithms=["ES256", "RS256"])
    assert token.header["typ"] == "at+jwt"
    JWTClaimsRegistry(
        iss={"essential": True, "value": meta["issuer"]},
        aud={"essential": True, "value": meta["issuer"] + "/api"},
        client_id={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
    ).validate(token.claims)
    assert token.claims["exp"] > time.time()
    return token.claims
