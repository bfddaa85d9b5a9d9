"""OAuth 2.0 error responses (RFC 6749 §5.2, §4.1.2.1; RFC 6750 §3.1).

Protocol endpoints answer in the protocol's own error format — ``{"error": …,
"error_description": …}`` — which is what relying-party libraries parse; everything else on the
platform answers RFC 9457 problems. ``error`` values come from the closed set the RFCs define.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

ERRORS = {
    "invalid_request": 400,
    "invalid_client": 401,
    "invalid_grant": 400,
    "unauthorized_client": 400,
    "unsupported_grant_type": 400,
    "invalid_scope": 400,
    "unsupported_token_type": 400,
    "invalid_token": 401,
    "insufficient_scope": 403,
    "access_denied": 400,
    "unsupported_response_type": 400,
    "server_error": 500,
    "temporarily_unavailable": 503,
    "login_required": 400,
    "consent_required": 400,
    "interaction_required": 400,
    "invalid_request_object": 400,
    "request_not_supported": 400,
    "request_uri_not_supported": 400,
    "registration_not_supported": 400,
    "slow_down": 429,
}

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    def __init__(self, error: str, description: str, *, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        assert error in ERRORS, error
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status or ERRORS[error]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers={**NO_STORE, **self.headers})
