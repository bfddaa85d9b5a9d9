"""One exception family for the HSM layer.

``core.errors`` translates these kinds to RFC 9457 problems; this package stays free of HTTP.
"""

from __future__ import annotations

import enum


class HsmErrorKind(enum.Enum):
    """Closed set of things that go wrong with a token, as an operator would name them."""

    WRONG_PIN = "wrong_pin"
    PIN_LOCKED = "pin_locked"
    TOKEN_MISSING = "token_missing"  # no token with that label / slot gone / token removed
    MODULE_MISSING = "module_missing"  # the PKCS#11 library cannot be loaded
    KEY_MISSING = "key_missing"
    KEY_EXISTS = "key_exists"
    DEVICE_ERROR = "device_error"  # CKR_DEVICE_ERROR, CKR_GENERAL_ERROR, injected faults
    UNSUPPORTED = "unsupported"  # mechanism / key type the token or we do not support
    REFUSED = "refused"  # the token refused the operation (sensitive attribute, unwrappable key…)


class HsmError(Exception):
    """A token operation failed. ``kind`` is stable; ``message`` is safe to show an operator."""

    def __init__(self, kind: HsmErrorKind, message: str, *, label: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.label = label

    def __repr__(self) -> str:
        return f"HsmError({self.kind.value}, {self.message!r})"
