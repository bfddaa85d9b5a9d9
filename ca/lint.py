"""Pre-issuance linting with pkilint (the RFC 5280 certificate linter), in-process.

Boulder's order: the *exact* TBS is linted before the CA key signs it. We sign the same
``CertificateBuilder`` with a throwaway software key of the CA key's algorithm (the TBS bytes do not
depend on the signing key: issuer, AKI and signature algorithm all come from the builder), lint that
copy, and only then ask the HSM for a signature. ``ca.service`` compares the two TBS encodings
after signing, so a lint of one certificate can never vouch for a different one.

The validator is the one ``lint_pkix_cert`` builds (pkilint/bin/lint_pkix_cert.py), constructed once
per process (≈ 0.7 ms per certificate afterwards).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

# Severities that refuse issuance (pkilint ValidationFindingSeverity names).
BLOCKING = ("FATAL", "ERROR")


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    path: str
    message: str | None = None

    def __str__(self) -> str:
        text = f"{self.severity} {self.code} @ {self.path}"
        return f"{text}: {self.message}" if self.message else text


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    from pkilint.pkix import certificate, extension, name

    return certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )


_lock = threading.Lock()  # pkilint validators keep per-run state; one document at a time


def lint_der(der: bytes) -> list[Finding]:
    """Every finding pkilint reports for a DER certificate."""
    from pkilint import loader

    with _lock:
        doc = loader.RFC5280CertificateDocumentLoader().load_der_document(der, "tbs")
        results = _validator().validate(doc.root)
    out: list[Finding] = []
    for result in results:
        for fd in result.finding_descriptions:
            out.append(Finding(fd.finding.severity.name, fd.finding.code, str(result.node.path), fd.message))
    return out


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity in BLOCKING]


@functools.lru_cache(maxsize=4)
def throwaway_key(kind: str) -> Any:
    """A software key used only to sign the lint copy: never trusted, never stored."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def throwaway_for(ca_key: Any) -> Any:
    return throwaway_key("rsa" if isinstance(ca_key, rsa.RSAPrivateKey) else "ec")
