"""Compact JWS (RFC 7515) signed inside the HSM, and strict verification (RFC 7519, RFC 8725).

Signing: the header and payload are serialised here and the signing input goes to
``hsm.jws.sign_jws`` with an ``oidc/<kid>`` key; no private key exists outside the token.

Verification follows the JWT BCP (RFC 8725 §3.1): the caller says which algorithms it accepts,
``none`` is never one of them, the key is chosen by ``kid`` and must be of the algorithm the header
names (no RSA/HMAC confusion), and the input size is bounded before any parsing.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from hsm.jws import sign_jws
from hsm.keys import HsmEcPrivateKey, HsmRsaPrivateKey

MAX_JWT_BYTES = 16 * 1024
SUPPORTED_ALGS = ("RS256", "ES256")


class JoseError(Exception):
    """A JWT that must not be trusted. ``reason`` is a short code for logs and error responses."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or any(c in text for c in "=+/ \n"):
        raise JoseError("bad_base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JoseError("bad_base64url") from exc


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def sign_compact(key: HsmEcPrivateKey | HsmRsaPrivateKey, alg: str, kid: str, claims: dict[str, Any], *, typ: str = "JWT") -> str:
    """``BASE64URL(header).BASE64URL(payload).BASE64URL(signature)`` with the signature from the HSM."""
    header = {"alg": alg, "kid": kid, "typ": typ}
    signing_input = (b64url(_json(header)) + "." + b64url(_json(claims))).encode("ascii")
    return signing_input.decode("ascii") + "." + b64url(sign_jws(key, alg, signing_input))


# -- verification keys -------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    alg: str
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def public_jwk(kid: str, alg: str, public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> dict[str, str]:
    """The RFC 7517 JWK of a public key, with ``kid``, ``alg`` and ``use``."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        size = math.ceil(public_key.curve.key_size / 8)
        return {
            "kty": "EC",
            "crv": {"secp256r1": "P-256", "secp384r1": "P-384"}[public_key.curve.name],
            "x": b64url(numbers.x.to_bytes(size, "big")),
            "y": b64url(numbers.y.to_bytes(size, "big")),
            "kid": kid,
            "alg": alg,
            "use": "sig",
        }
    rn = public_key.public_numbers()
    return {
        "kty": "RSA",
        "n": b64url(rn.n.to_bytes((rn.n.bit_length() + 7) // 8, "big")),
        "e": b64url(rn.e.to_bytes((rn.e.bit_length() + 7) // 8, "big")),
        "kid": kid,
        "alg": alg,
        "use": "sig",
    }


def key_from_jwk(jwk: dict[str, Any]) -> VerificationKey:
    """A verification key from a client's registered JWK (private_key_jwt). Public parts only."""
    if not isinstance(jwk, dict):
        raise JoseError("jwk_not_object")
    if any(name in jwk for name in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise JoseError("jwk_contains_private_key")
    kty = jwk.get("kty")
    kid = str(jwk.get("kid") or "")
    try:
        if kty == "EC":
            if jwk.get("crv") != "P-256":
                raise JoseError("jwk_unsupported_curve")
            x = int.from_bytes(b64url_decode(jwk["x"]), "big")
            y = int.from_bytes(b64url_decode(jwk["y"]), "big")
            return VerificationKey(kid, "ES256", ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key())
        if kty == "RSA":
            n = int.from_bytes(b64url_decode(jwk["n"]), "big")
            e = int.from_bytes(b64url_decode(jwk["e"]), "big")
            if n.bit_length() < 2048:
                raise JoseError("jwk_rsa_too_short")
            return VerificationKey(kid, "RS256", rsa.RSAPublicNumbers(e, n).public_key())
    except (KeyError, TypeError, ValueError) as exc:
        raise JoseError("jwk_invalid") from exc
    raise JoseError("jwk_unsupported_kty")


# -- verification ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unverified:
    """A parsed but NOT verified JWS (Warehouse habit: untrusted data is named as such)."""

    header: dict[str, Any]
    unverified_claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def parse_compact(token: str) -> Unverified:
    if not isinstance(token, str) or len(token) > MAX_JWT_BYTES:
        raise JoseError("too_large")
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("not_compact_jws")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: "[[[[…" nested past the C decoder's limit
        raise JoseError("bad_json") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JoseError("bad_json")
    if "crit" in header:  # RFC 7515 §4.1.11: we understand no extensions
        raise JoseError("unsupported_crit")
    return Unverified(header, claims, (parts[0] + "." + parts[1]).encode("ascii"), b64url_decode(parts[2]))


def verify_signature(parsed: Unverified, key: VerificationKey) -> None:
    try:
        if key.alg == "ES256" and isinstance(key.public_key, ec.EllipticCurvePublicKey):
            if len(parsed.signature) != 64:
                raise JoseError("bad_signature")
            r = int.from_bytes(parsed.signature[:32], "big")
            s = int.from_bytes(parsed.signature[32:], "big")
            key.public_key.verify(utils.encode_dss_signature(r, s), parsed.signing_input, ec.ECDSA(hashes.SHA256()))
            return
        if key.alg == "RS256" and isinstance(key.public_key, rsa.RSAPublicKey):
            key.public_key.verify(parsed.signature, parsed.signing_input, padding.PKCS1v15(), hashes.SHA256())
            return
    except InvalidSignature as exc:
        raise JoseError("bad_signature") from exc
    raise JoseError("alg_key_mismatch")


def verify_compact(
    token: str,
    keys: dict[str, VerificationKey] | list[VerificationKey],
    *,
    algorithms: tuple[str, ...] = SUPPORTED_ALGS,
    typ: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a compact JWS and return ``(header, claims)``. Claims (exp, aud…) are the caller's job."""
    parsed = parse_compact(token)
    alg = parsed.header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg.lower() == "none":
        raise JoseError("alg_not_allowed")
    if typ is not None:
        got = str(parsed.header.get("typ", "")).lower()
        if got.removeprefix("application/") != typ.lower():
            raise JoseError("wrong_typ")
    kid = parsed.header.get("kid")
    if isinstance(keys, dict):
        key = keys.get(kid) if isinstance(kid, str) else None
        candidates = [key] if key is not None else []
    else:  # a client's JWK Set: by kid when given, else every key of that algorithm
        candidates = [k for k in keys if k.alg == alg and (not kid or k.kid == kid)]
    candidates = [k for k in candidates if k.alg == alg]
    if not candidates:
        raise JoseError("unknown_key")
    for candidate in candidates:
        try:
            verify_signature(parsed, candidate)
            return parsed.header, parsed.unverified_claims
        except JoseError:
            continue
    raise JoseError("bad_signature")
