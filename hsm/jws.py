"""JWS signatures with token keys (RFC 7515/7518): ES256/ES384 as raw r||s, RS256/PS256."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from hsm.errors import HsmError, HsmErrorKind
from hsm.keys import HsmEcPrivateKey, HsmRsaPrivateKey

_EC_ALGS = {"ES256": ("sha256", 256), "ES384": ("sha384", 384)}
_RSA_ALGS = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "PS256": hashes.SHA256}


def jws_algorithm_for(key: HsmEcPrivateKey | HsmRsaPrivateKey) -> str:
    """The natural JWS ``alg`` for a key: ES256 for P-256, ES384 for P-384, RS256 for RSA."""
    if isinstance(key, HsmEcPrivateKey):
        return "ES256" if key.key_size == 256 else "ES384"
    return "RS256"


def sign_jws(key: HsmEcPrivateKey | HsmRsaPrivateKey, alg: str, signing_input: bytes) -> bytes:
    """Signature bytes for ``BASE64URL(header) || '.' || BASE64URL(payload)``."""
    if alg in _EC_ALGS and isinstance(key, HsmEcPrivateKey):
        hash_name, bits = _EC_ALGS[alg]
        if key.key_size != bits:
            raise HsmError(HsmErrorKind.UNSUPPORTED, f"{alg} needs a P-{bits} key", label=key.label)
        return key.sign_digest_raw(hashlib.new(hash_name, signing_input).digest())
    if alg in _RSA_ALGS and isinstance(key, HsmRsaPrivateKey):
        pad = padding.PKCS1v15() if alg.startswith("RS") else padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        return key.sign(signing_input, pad, _RSA_ALGS[alg]())
    raise HsmError(HsmErrorKind.UNSUPPORTED, f"JWS alg {alg} does not fit key {key.label!r}", label=key.label)
