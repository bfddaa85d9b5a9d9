"""One error type with a closed set of kinds (Boulder's ``errors/errors.go``).

Every failure a caller should see is a :class:`Problem`: a ``Kind`` (fixed HTTP status and a stable
``type`` URI), a ``code`` naming the precise cause (``csr.bad_signature``, ``identity.invalid_id_number``)
and a human ``detail``. ``core.web`` renders them as RFC 9457 ``application/problem+json`` in exactly
one place; OAuth endpoints map the same kinds to RFC 6749 error JSON.
"""

from __future__ import annotations

import enum
from typing import Any

from hsm.errors import HsmError, HsmErrorKind

PROBLEM_TYPE_BASE = "urn:eauth:problem:"


class Kind(enum.Enum):
    """(slug, HTTP status, title). The slug is part of the public ``type`` URI: never rename one."""

    INVALID_INPUT = ("invalid-input", 400, "The request is malformed")
    VALIDATION = ("validation-failed", 422, "Some fields are invalid")
    UNAUTHENTICATED = ("unauthenticated", 401, "Authentication is required")
    FORBIDDEN = ("forbidden", 403, "You are not allowed to do this")
    NOT_FOUND = ("not-found", 404, "Not found")
    METHOD_NOT_ALLOWED = ("method-not-allowed", 405, "Method not allowed")
    REQUEST_TIMEOUT = ("request-timeout", 408, "The request took too long to arrive")
    CONFLICT = ("conflict", 409, "The request conflicts with the current state")
    TOO_LARGE = ("too-large", 413, "The request is too large")
    UNSUPPORTED_MEDIA_TYPE = ("unsupported-media-type", 415, "Unsupported media type")
    POLICY = ("policy-violation", 422, "The request violates policy")
    RATE_LIMITED = ("rate-limited", 429, "Too many requests")
    HSM_UNAVAILABLE = ("hsm-unavailable", 503, "The hardware security module is unavailable")
    UNAVAILABLE = ("unavailable", 503, "The service is temporarily unavailable")
    INVALID_CONFIG = ("invalid-config", 500, "The platform configuration is invalid")
    INTERNAL = ("internal", 500, "Internal error")

    @property
    def slug(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def title(self) -> str:
        return self.value[2]

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug


class Problem(Exception):
    """A failure with a stable kind and code, safe to show to the caller."""

    def __init__(
        self,
        kind: Kind,
        code: str,
        detail: str,
        *,
        fields: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.code = code
        self.detail = detail
        self.fields = fields or []
        self.extra = extra or {}
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return self.kind.status

    def to_dict(self, *, instance: str | None = None, correlation_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.kind.type_uri,
            "title": self.kind.title,
            "status": self.kind.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.fields:
            body["errors"] = self.fields
        if correlation_id:
            body["correlation_id"] = correlation_id
        for key, value in self.extra.items():
            body.setdefault(key, value)
        return body

    def __repr__(self) -> str:
        return f"Problem({self.kind.name}, {self.code!r}, {self.detail!r})"


_HSM_CODES = {
    HsmErrorKind.WRONG_PIN: (Kind.HSM_UNAVAILABLE, "hsm.wrong_pin"),
    HsmErrorKind.PIN_LOCKED: (Kind.HSM_UNAVAILABLE, "hsm.pin_locked"),
    HsmErrorKind.TOKEN_MISSING: (Kind.HSM_UNAVAILABLE, "hsm.token_missing"),
    HsmErrorKind.MODULE_MISSING: (Kind.HSM_UNAVAILABLE, "hsm.module_missing"),
    HsmErrorKind.DEVICE_ERROR: (Kind.HSM_UNAVAILABLE, "hsm.device_error"),
    HsmErrorKind.KEY_MISSING: (Kind.NOT_FOUND, "hsm.key_missing"),
    HsmErrorKind.KEY_EXISTS: (Kind.CONFLICT, "hsm.key_exists"),
    HsmErrorKind.UNSUPPORTED: (Kind.INVALID_INPUT, "hsm.unsupported"),
    HsmErrorKind.REFUSED: (Kind.FORBIDDEN, "hsm.refused"),
}


def from_hsm(exc: HsmError) -> Problem:
    """The problem an HSM failure becomes (503 for availability, so clients retry)."""
    kind, code = _HSM_CODES[exc.kind]
    return Problem(kind, code, exc.message, headers={"Retry-After": "5"} if kind.status == 503 else None)


def invalid(code: str, detail: str, **fields: str) -> Problem:
    """Shorthand for a validation problem naming the offending fields."""
    return Problem(
        Kind.VALIDATION if fields else Kind.INVALID_INPUT,
        code,
        detail,
        fields=[{"name": name, "reason": reason} for name, reason in fields.items()],
    )


def not_found(code: str, detail: str) -> Problem:
    return Problem(Kind.NOT_FOUND, code, detail)


def conflict(code: str, detail: str) -> Problem:
    return Problem(Kind.CONFLICT, code, detail)
