"""Tables of the signing package: seals, the clients allowed to use them, timestamp units, and a
register of sealed documents (what the QR code on a sealed PDF points at).

Times are ISO 8601 UTC strings, as elsewhere in the platform.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base

ACTIVE = "active"
DISABLED = "disabled"


class Seal(Base):
    """A department seal: an HSM key (``seal/<department>/<n>``), its ``seal`` profile certificate and
    the stamp image shown on sealed documents."""

    __tablename__ = "signing_seals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[str] = mapped_column(String(32), index=True)  # identity organisation id
    department_name: Mapped[str] = mapped_column(String(300))
    department_uscc: Mapped[str] = mapped_column(String(18))
    key_label: Mapped[str] = mapped_column(String(100), unique=True)
    cert_serial: Mapped[str] = mapped_column(String(40))
    cert_der: Mapped[bytes] = mapped_column(LargeBinary)
    image_png: Mapped[bytes] = mapped_column(LargeBinary)
    font_otf: Mapped[bytes] = mapped_column(LargeBinary)  # CJK subset for this seal's appearance text
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[str] = mapped_column(String(32))


class SealClient(Base):
    """A department system (OAuth client) allowed to use a seal, on top of the ``seal:<id>`` scope."""

    __tablename__ = "signing_seal_clients"

    seal_id: Mapped[str] = mapped_column(ForeignKey("signing_seals.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[str] = mapped_column(String(32))


class TsaUnit(Base):
    """A timestamp unit: HSM key ``tsa/<n>`` and its ``tsa`` profile certificate."""

    __tablename__ = "signing_tsa_units"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_label: Mapped[str] = mapped_column(String(100), unique=True)
    cert_serial: Mapped[str] = mapped_column(String(40))
    cert_der: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[str] = mapped_column(String(32))


class TsaInstance(Base):
    """One row per process that issues timestamps: its id is folded into every token serial, so
    serials from concurrent workers never collide (see ``signing.rfc3161.SerialClock``)."""

    __tablename__ = "signing_tsa_instances"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[str] = mapped_column(String(32))


class SealedDocument(Base):
    """A document sealed here. The id is in the QR code; the digest lets the public page say whether
    an uploaded file is the one we sealed."""

    __tablename__ = "signing_documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seal_id: Mapped[str] = mapped_column(ForeignKey("signing_seals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # pdf | jws | cms
    level: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[str] = mapped_column(String(32))
