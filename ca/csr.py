"""PKCS#10 certificate requests (RFC 2986): parsing untrusted bytes and checking the key.

Everything here is a pure function of its input. A CSR contributes only its public key (after
proof of possession) and, for ``server``, the DNS names it asks for; the subject always comes from
the identity registry. Each refusal has its own problem code, so a caller can tell a truncated
upload from a forged signature.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from core.errors import Kind, Problem

MAX_CSR_BYTES = 16 * 1024  # an RSA-4096 CSR with many SANs is ≈ 2-4 KiB

_PEM_RE = re.compile(
    rb"\A\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n\t ]+)-----END (NEW )?CERTIFICATE REQUEST-----\s*\Z"
)

# First primes: an RSA modulus divisible by any of them is not the product of two large primes.
_SMALL_PRIMES = [p for p in range(3, 1000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _bad(code: str, detail: str) -> Problem:
    return Problem(Kind.INVALID_INPUT, code, detail)


@dataclass(frozen=True)
class ParsedCsr:
    """A CSR whose signature verified: ``public_key`` is proven to be held by the requester."""

    csr: x509.CertificateSigningRequest
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    dns_names: tuple[str, ...]

    @property
    def spki_der(self) -> bytes:
        return self.public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _der_declared_length(data: bytes) -> int | None:
    """Total length a DER SEQUENCE header announces (tag + length + content), or None."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < 2 + n:
        return None
    return 2 + n + int.from_bytes(data[2 : 2 + n], "big")


def to_der(data: bytes) -> bytes:
    """The DER of a CSR given as DER or as exactly one PEM block (nothing else around it)."""
    if not data or not data.strip():
        raise _bad("csr.empty", "the certificate request is empty")
    if len(data) > MAX_CSR_BYTES:
        raise Problem(Kind.TOO_LARGE, "csr.too_large", f"a certificate request is at most {MAX_CSR_BYTES} bytes")
    if data.lstrip()[:5] == b"-----" or b"-----BEGIN" in data:
        m = _PEM_RE.match(data)
        if m is None:
            raise _bad("csr.pem_junk", "expected exactly one PEM 'CERTIFICATE REQUEST' block and nothing else")
        import base64
        import binascii

        try:
            return base64.b64decode(re.sub(rb"\s+", b"", m.group(2)), validate=True)
        except (binascii.Error, ValueError):
            raise _bad("csr.pem_junk", "the PEM block is not valid base64") from None
    return data


def parse(data: bytes) -> ParsedCsr:
    """Parse untrusted bytes and verify proof of possession. Raises 4xx problems only."""
    der = to_der(data)
    declared = _der_declared_length(der)
    if declared is None:
        raise _bad("csr.malformed", "the certificate request is not DER or PEM")
    if declared > len(der):
        raise _bad("csr.truncated", f"the certificate request is truncated ({len(der)} of {declared} bytes)")
    if declared < len(der):
        raise _bad("csr.trailing_data", "the certificate request has data after its end")
    try:
        csr = x509.load_der_x509_csr(der)
    except x509.InvalidVersion as exc:  # not a ValueError: PKCS#10 knows only version 0 (v1)
        raise _bad("csr.bad_version", f"the certificate request has version {exc.parsed_version}; PKCS#10 requests are version 1 (0)") from None
    except ValueError:
        raise _bad("csr.malformed", "the certificate request could not be decoded") from None
    try:
        public_key = csr.public_key()
    except (ValueError, x509.UnsupportedGeneralNameType) as exc:
        raise _bad("csr.invalid_key", f"the request's public key is not valid ({exc})") from None
    except Exception:  # noqa: BLE001 - unsupported algorithms surface as several exception types
        raise _bad("csr.unsupported_key", "the request's key algorithm is not supported") from None
    if isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey, dsa.DSAPublicKey)) or not isinstance(
        public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)
    ):
        raise _bad("csr.unsupported_key", "only EC (P-256, P-384) and RSA keys are accepted")
    try:
        valid = csr.is_signature_valid
    except Exception:  # noqa: BLE001 - e.g. unsupported signature algorithm
        valid = False
    if not valid:
        raise _bad("csr.bad_signature", "the request's signature does not verify (no proof of possession)")
    dns: list[str] = []
    try:
        for ext in csr.extensions:
            if isinstance(ext.value, x509.BasicConstraints) and ext.value.ca:
                raise Problem(Kind.POLICY, "csr.ca_requested", "the request asks for a CA certificate")
            if isinstance(ext.value, x509.SubjectAlternativeName):
                dns.extend(ext.value.get_values_for_type(x509.DNSName))
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise _bad("csr.bad_extensions", f"the request's extensions cannot be decoded ({exc})") from None
    return ParsedCsr(csr, public_key, tuple(dns))


def check_key_strength(public_key: object) -> None:
    """Refuse weak keys whatever the profile: RSA < 2048 bits, small or even exponents, moduli with
    small factors; EC points are validated by ``cryptography`` when the key is loaded (off-curve
    points raise ``ValueError`` → ``csr.invalid_key``)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        if public_key.key_size < 2048:
            raise Problem(Kind.POLICY, "csr.weak_key", f"RSA keys must be at least 2048 bits (got {public_key.key_size})")
        if numbers.e < 65537 or numbers.e % 2 == 0:
            raise Problem(Kind.POLICY, "csr.weak_exponent", f"the RSA public exponent must be odd and at least 65537 (got {numbers.e})")
        if numbers.n % 2 == 0 or any(numbers.n % p == 0 for p in _SMALL_PRIMES):
            raise Problem(Kind.POLICY, "csr.weak_key", "the RSA modulus has a small factor")
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ("secp256r1", "secp384r1"):
            raise Problem(Kind.POLICY, "csr.unsupported_curve", f"curve {public_key.curve.name} is not accepted (P-256, P-384)")
    else:
        raise _bad("csr.unsupported_key", "only EC (P-256, P-384) and RSA keys are accepted")


def spki_sha256(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
