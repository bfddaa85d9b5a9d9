"""Pydantic I/O of the certificates API."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field

from core.errors import Kind, Problem


class IssueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str = Field(max_length=32)
    csr: str = Field(description="PKCS#10 request: PEM, or base64 of the DER", max_length=64 * 1024)
    subject_id: str | None = Field(default=None, max_length=64, description="person id, resident ID number, organisation id or USCC")
    dns_names: list[str] = Field(default_factory=list, max_length=100)
    org_id: str | None = Field(default=None, max_length=64, description="department, for staff belonging to several")
    ca: str | None = Field(default=None, max_length=64)

    def csr_bytes(self) -> bytes:
        return csr_text_to_bytes(self.csr)


class RekeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csr: str = Field(max_length=64 * 1024)
    reason: str = Field(default="re-key", max_length=300)


class MaintenanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=300)


class CertificateOut(BaseModel):
    serial: str
    issuer: str
    profile: str
    status: str
    subject: str
    subject_person_id: str | None = None
    subject_org_id: str | None = None
    not_before: str
    not_after: str
    sha256: str | None = None
    replaces_serial: str | None = None
    maintenance_reason: str | None = None
    revoked_at: str | None = None
    revocation_reason: str | None = None
    pem: str | None = None


def csr_text_to_bytes(text: str) -> bytes:
    data = text.strip()
    if "-----BEGIN" in data or data.startswith("-----"):
        return text.encode("utf-8", "replace")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise Problem(Kind.INVALID_INPUT, "csr.malformed", "csr must be PEM or base64 of the DER request") from None
