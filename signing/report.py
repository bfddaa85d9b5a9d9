"""The verification report: one model for PDFs (PAdES), JWS (JAdES) and CMS (CAdES) records.

Data first (frozen dataclasses, pyHanko habit), rendered afterwards as JSON (``as_dict``), an HTML
page (``templates/verify_report.html``) and a PDF (:mod:`signing.report_pdf`).

Indications and sub-indications are those of ETSI TS 119 102-1 §5.1 (TOTAL-PASSED,
INDETERMINATE, TOTAL-FAILED; HASH_FAILURE, SIG_CRYPTO_FAILURE, REVOKED, NO_CERTIFICATE_CHAIN_FOUND,
…). The overall verdict is the worst indication of the document's signatures; a document
without any signature fails (FORMAT_FAILURE: there is nothing to rely on).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Indication(str, enum.Enum):
    TOTAL_PASSED = "TOTAL-PASSED"
    INDETERMINATE = "INDETERMINATE"
    TOTAL_FAILED = "TOTAL-FAILED"

    @property
    def rank(self) -> int:
        return {"TOTAL-PASSED": 0, "INDETERMINATE": 1, "TOTAL-FAILED": 2}[self.value]

    @property
    def colour(self) -> str:
        """The verdict colour a citizen reads: green, amber, red."""
        return {"TOTAL-PASSED": "green", "INDETERMINATE": "amber", "TOTAL-FAILED": "red"}[self.value]


class SubIndication(str, enum.Enum):
    """ETSI TS 119 102-1 §5.1.3 (the subset we can produce)."""

    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    REVOKED_CA_NO_POE = "REVOKED_CA_NO_POE"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    OUT_OF_BOUNDS_NOT_REVOKED = "OUT_OF_BOUNDS_NOT_REVOKED"
    TRY_LATER = "TRY_LATER"
    CERTIFICATE_CHAIN_GENERAL_FAILURE = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
    TIMESTAMP_ORDER_FAILURE = "TIMESTAMP_ORDER_FAILURE"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    GENERIC = "GENERIC"


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    serial: str  # lowercase hex
    not_before: str
    not_after: str
    sha256: str
    trust_anchor: bool = False


@dataclass(frozen=True)
class Signer:
    """Who sealed: the organisation in the certificate and, for our own seals, the seal record."""

    name: str  # certificate subject common name
    organisation: str | None = None
    uscc: str | None = None  # organizationIdentifier, when present
    seal_id: str | None = None
    seal_name: str | None = None
    department_id: str | None = None


@dataclass(frozen=True)
class Revocation:
    status: str  # good | revoked | on_hold | unknown | not_checked
    source: str  # platform-ocsp | platform-crl | platform-register | embedded-dss | embedded-cms | none
    checked_at: str | None = None
    revoked_at: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Timestamp:
    time: str
    tsa: str
    valid: bool
    trusted: bool
    kind: str = "signature"  # signature | document | content


@dataclass(frozen=True)
class Coverage:
    """What the signature covers. ``modifications``: what changed after signing, in words:
    none · later-signatures · dss-or-timestamps · form-filling · annotations · other."""

    whole_document: bool
    covered_revision: int | None = None
    total_revisions: int | None = None
    modifications: str = "none"
    changed_fields: tuple[str, ...] = ()
    certification: int | None = None  # DocMDP P value for certification signatures
    docmdp_ok: bool | None = None


@dataclass(frozen=True)
class SignatureReport:
    id: str  # field name (PDF) or index
    format: str  # PAdES | JAdES | CAdES | PDF-TSA
    indication: Indication
    sub_indication: SubIndication | None
    signer: Signer
    signing_time: str | None
    signing_time_source: str  # timestamp | claimed | none
    level: str | None  # B-B | B-T | B-LT | B-LTA
    chain: tuple[CertificateInfo, ...]
    revocation: Revocation
    coverage: Coverage | None
    timestamps: tuple[Timestamp, ...] = ()
    intact: bool = False
    crypto_valid: bool = False
    trusted: bool = False
    digest_algorithm: str | None = None
    signature_algorithm: str | None = None
    reasons: tuple[str, ...] = ()  # machine codes explaining the indication
    warnings: tuple[str, ...] = ()

    @classmethod
    def unreadable(cls, id: str, format: str, exc: BaseException) -> SignatureReport:
        """A signature the validator could not even read: TOTAL-FAILED / FORMAT_FAILURE, never a 500."""
        return cls(
            id=id,
            format=format,
            indication=Indication.TOTAL_FAILED,
            sub_indication=SubIndication.FORMAT_FAILURE,
            signer=Signer(name="?"),
            signing_time=None,
            signing_time_source="none",
            level=None,
            chain=(),
            revocation=Revocation("not_checked", "none"),
            coverage=None,
            reasons=(f"signature_unreadable:{type(exc).__name__}",),
        )


@dataclass(frozen=True)
class DocumentInfo:
    kind: str  # pdf | jws | cms
    sha256: str
    size: int
    name: str | None = None
    registered_id: str | None = None  # our sealed-document register (QR link)
    registered_seal: str | None = None
    registered_at: str | None = None
    pages: int | None = None
    revisions: int | None = None


@dataclass(frozen=True)
class Report:
    document: DocumentInfo
    indication: Indication
    sub_indication: SubIndication | None
    signatures: tuple[SignatureReport, ...]
    validated_at: str
    policy: str
    trust_anchors: tuple[str, ...] = field(default=())

    @property
    def colour(self) -> str:
        return self.indication.colour

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self)) | {"colour": self.colour}


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def overall(signatures: tuple[SignatureReport, ...]) -> tuple[Indication, SubIndication | None]:
    """Worst indication wins; no signature at all is a format failure."""
    if not signatures:
        return Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE
    worst = max(signatures, key=lambda s: s.indication.rank)
    return worst.indication, worst.sub_indication
