"""PKCS#11 tokens and the keys in them.

The ONLY package that imports ``pkcs11`` (import-linter contract). Everything above it receives
key objects that implement ``cryptography``'s private-key interfaces with ``sign()`` done inside
the token, so the standard X.509 / CRL / OCSP builders sign with HSM keys unchanged.
"""

from hsm.errors import HsmError, HsmErrorKind
from hsm.keys import HsmEcPrivateKey, HsmRsaPrivateKey, HsmSecretKey, KeySpec
from hsm.token import Token, TokenConfig

__all__ = [
    "HsmEcPrivateKey",
    "HsmError",
    "HsmErrorKind",
    "HsmRsaPrivateKey",
    "HsmSecretKey",
    "KeySpec",
    "Token",
    "TokenConfig",
]
