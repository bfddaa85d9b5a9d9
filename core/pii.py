"""Masking of personal data in logs, audit details and listings.

Formats follow common practice for PRC documents: ID numbers keep the 6-digit region code and the
last 4 characters (``460102********1234``); mobile numbers keep the first 3 and last 4
(``138****5678``).
"""

from __future__ import annotations

import re
from typing import Any

_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9A-Za-z])")
_PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask_id_number(value: str) -> str:
    if len(value) == 18:
        return value[:6] + "*" * 8 + value[-4:]
    return value[:2] + "*" * max(len(value) - 4, 0) + value[-2:]


def mask_phone(value: str) -> str:
    if len(value) == 11:
        return value[:3] + "****" + value[-4:]
    return "*" * max(len(value) - 4, 0) + value[-4:]


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return (local[:1] + "***@" + domain) if domain else "***"


def mask_text(text: str) -> str:
    """Mask every ID number and mobile number that appears in free text."""
    text = _ID_RE.sub(lambda m: m.group(1) + "********" + m.group(3)[-4:], text)
    return _PHONE_RE.sub(lambda m: m.group(1) + "****" + m.group(3), text)


def mask_value(value: Any) -> Any:
    """Recursively mask strings inside JSON-like data."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(v) for v in value]
    return value
