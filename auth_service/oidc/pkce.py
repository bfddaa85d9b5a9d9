"""Proof Key for Code Exchange (RFC 7636), ``S256`` only.

``plain`` is refused (it protects nothing once the authorization request leaks; OAuth 2.1 §4.1.1
and the Security BCP, RFC 9700 §2.1.1). Verifiers and challenges are checked for the exact
alphabet and length of RFC 7636 §4.1/§4.2 before any hashing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # BASE64URL(SHA-256) without padding


def valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE.match(challenge or ""))


def valid_verifier(verifier: str) -> bool:
    return bool(_VERIFIER.match(verifier or ""))


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode("ascii")


def verify(challenge: str, verifier: str) -> bool:
    """RFC 7636 §4.6: ``BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge``."""
    return valid_verifier(verifier) and hmac.compare_digest(s256(verifier), challenge)
