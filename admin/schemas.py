"""Pydantic I/O of the admin REST API (``/api/v1``). Unknown fields are refused."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evidence(_In):
    document_type: str = Field(max_length=40)
    document_number: str = Field(max_length=40)
    notes: str = Field("", max_length=2000)


class PersonIn(_In):
    name: str = Field(max_length=200)
    id_number: str = Field(max_length=40)
    phone: str | None = Field(None, max_length=20)
    email: str | None = Field(None, max_length=254)
    evidence: Evidence | None = None


class OrgIn(_In):
    name: str = Field(max_length=300)
    uscc: str = Field(max_length=18)
    type: Literal["enterprise", "government", "institution"] = "enterprise"
    name_en: str | None = Field(None, max_length=300)
    parent: str | None = Field(None, max_length=64, description="parent organisation: USCC or id")
    dns_suffixes: list[str] = Field(default_factory=list, max_length=50)
    evidence: Evidence | None = None


class SearchIn(_In):
    q: str = Field("", max_length=100, description="name, ID number (full or masked), phone, e-mail")
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


class RevealIn(_In):
    reason: str = Field(max_length=300)


class RequestIn(_In):
    type: Literal["new", "renewal", "rekey", "modification", "revocation", "suspension", "resumption"]
    subject_kind: Literal["person", "org"] | None = None
    subject_id: str | None = Field(None, max_length=64)
    profile: str | None = Field(None, max_length=32)
    csr: str | None = Field(None, max_length=32768, description="PKCS#10, PEM")
    dns_names: list[str] = Field(default_factory=list, max_length=100)
    serial: str | None = Field(None, max_length=64, description="the certificate a maintenance request acts on")
    reason: str | None = Field(None, max_length=300)
    comment: str = Field("", max_length=2000)
    draft: bool = False
    seal_name: str | None = Field(None, max_length=60)
    seal_clients: list[str] = Field(default_factory=list, max_length=50)


class DecisionIn(_In):
    comment: str = Field("", max_length=2000)


class CommentIn(_In):
    body: str = Field(max_length=2000)


class PageOut(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


class ClientIn(_In):
    name: str = Field(max_length=200)
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    backchannel_logout_uri: str | None = Field(None, max_length=2000)
    grant_types: list[Literal["authorization_code", "refresh_token", "client_credentials"]] = Field(default_factory=lambda: ["authorization_code"], max_length=3)
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile"], max_length=50)
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"] = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    department: str | None = Field(None, max_length=64, description="USCC or id; CA administrators only (others: their own department)")
