"""Tables of the CA: its authorities, the certificates they issued, and maintenance records.

Other packages never touch these tables: they go through :mod:`ca.service` (issuance, look-up)
and, for revocation status, the revocation module of this package.

Times are ISO 8601 UTC strings (``2026-11-25T08:00:00+00:00``), as in the rest of the platform, so
they compare lexically on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

# Certificate.status values. ``pending``: serial reserved and committed, not yet signed (Boulder's
# "precertificate" moment); ``failed``: the signing attempt did not produce a certificate — the
# serial stays reserved forever, never reused.
PENDING = "pending"
ISSUED = "issued"
FAILED = "failed"
REVOKED = "revoked"
ON_HOLD = "on_hold"
STATUSES = (PENDING, ISSUED, FAILED, REVOKED, ON_HOLD)


class CertificateAuthority(Base):
    __tablename__ = "ca_authorities"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # "root", "public-service"
    key_label: Mapped[str] = mapped_column(String(100), unique=True)  # "ca/<name>"
    der: Mapped[bytes | None] = mapped_column(LargeBinary)  # None while an external CSR awaits signature
    csr_der: Mapped[bytes | None] = mapped_column(LargeBinary)  # externally signed issuing CA: our request
    parent: Mapped[str | None] = mapped_column(ForeignKey("ca_authorities.name"))
    is_root: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    serial: Mapped[str | None] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str | None] = mapped_column(String(64))
    spki_sha256: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[str | None] = mapped_column(String(32))
    not_after: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[str] = mapped_column(String(32))


class Certificate(Base):
    __tablename__ = "ca_certificates"
    __table_args__ = (
        Index("ix_ca_certificates_status_not_after", "status", "not_after"),
        Index("ix_ca_certificates_issuer_status", "issuer", "status"),
        Index("ix_ca_certificates_created_at", "created_at"),  # the publisher's pre-signing scan (ca_0003)
    )

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # lowercase hex, no leading zeros
    issuer: Mapped[str] = mapped_column(ForeignKey("ca_authorities.name"))
    profile: Mapped[str] = mapped_column(String(32), index=True)
    subject_person_id: Mapped[str | None] = mapped_column(String(32), index=True)
    subject_org_id: Mapped[str | None] = mapped_column(String(32), index=True)
    subject_dn: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    not_before: Mapped[str] = mapped_column(String(32))
    not_after: Mapped[str] = mapped_column(String(32))
    der: Mapped[bytes | None] = mapped_column(LargeBinary)
    sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    spki_sha256: Mapped[str] = mapped_column(String(64), index=True)
    replaces_serial: Mapped[str | None] = mapped_column(String(40), index=True)
    maintenance_reason: Mapped[str | None] = mapped_column(String(300))
    failure: Mapped[str | None] = mapped_column(String(300))  # why a serial ended ``failed``
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[str] = mapped_column(String(32))
    # Revocation (written by ca.revocation)
    revoked_at: Mapped[str | None] = mapped_column(String(32))
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    invalidity_date: Mapped[str | None] = mapped_column(String(32))
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    status_changed_at: Mapped[str | None] = mapped_column(String(32))


class MaintenanceRecord(Base):
    """The standardised "certificate maintenance information": what happened to which certificate,
    why, and who did it."""

    __tablename__ = "ca_maintenance"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # issuance | renewal | rekey | modification
    old_serial: Mapped[str | None] = mapped_column(String(40), index=True)
    new_serial: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(Text)
    operator: Mapped[str] = mapped_column(String(200))
    at: Mapped[str] = mapped_column(String(32))


# -- revocation: CRLs and the OCSP responder (ca.revocation, ca.crl, ca.ocsp) -----------------------


class RevocationState(Base):
    """Per issuing CA: the CRL number counter and the status-change counter the CRL publisher
    compares against (``changes > published_changes`` means a re-publication is due)."""

    __tablename__ = "ca_revocation_state"

    issuer: Mapped[str] = mapped_column(ForeignKey("ca_authorities.name"), primary_key=True)
    crl_number: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    changes: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    published_changes: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    changed_at: Mapped[str | None] = mapped_column(String(32))
    published_at: Mapped[str | None] = mapped_column(String(32))
    next_update: Mapped[str | None] = mapped_column(String(32))


class Crl(Base):
    """A published CRL. ``scope`` is ``full`` or the shard number (``0``…``15``, see ca.crl)."""

    __tablename__ = "ca_crls"
    __table_args__ = (Index("ix_ca_crls_issuer_scope_number", "issuer", "scope", "number"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # "<issuer>:<scope>:<number>"
    issuer: Mapped[str] = mapped_column(ForeignKey("ca_authorities.name"))
    scope: Mapped[str] = mapped_column(String(8))
    number: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    this_update: Mapped[str] = mapped_column(String(32))
    next_update: Mapped[str] = mapped_column(String(32))
    entries: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    der: Mapped[bytes] = mapped_column(LargeBinary)


class OcspResponder(Base):
    """The delegated responder of an issuing CA (key ``ocsp/<ca>`` in the HSM, short-lived cert)."""

    __tablename__ = "ca_ocsp_responders"

    issuer: Mapped[str] = mapped_column(ForeignKey("ca_authorities.name"), primary_key=True)
    key_label: Mapped[str] = mapped_column(String(100))
    serial: Mapped[str] = mapped_column(String(40))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[str] = mapped_column(String(32))
    not_after: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))


class OcspResponse(Base):
    """A pre-signed OCSP response (SHA-1 CertID, no nonce) per (issuer, serial): the source of truth
    every worker process serves from. ``seq`` orders changes so workers refresh their in-process
    copies cheaply (see ca.ocsp)."""

    __tablename__ = "ca_ocsp_responses"
    __table_args__ = (Index("ix_ca_ocsp_responses_this_update", "this_update"),)

    issuer: Mapped[str] = mapped_column(ForeignKey("ca_authorities.name"), primary_key=True)
    serial: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # good | revoked | on_hold
    responder: Mapped[str] = mapped_column(String(40))  # serial of the responder cert that signed it
    this_update: Mapped[str] = mapped_column(String(32))
    next_update: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), index=True, default=0)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class OcspSequence(Base):
    """One row: the last ``seq`` handed to a changed OCSP response. Taken with a row lock, so the
    order of ``seq`` values is the order in which the changes committed."""

    __tablename__ = "ca_ocsp_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
