"""Check-digit validation of PRC identity numbers.

- Resident identity number, GB 11643-1999: 17 digits + check character; weights 2^(17-i) mod 11,
  check = (12 - (sum mod 11)) mod 11, where 10 is written ``X``. Digits 7–14 are the birth date.
- Unified social credit code, GB 32100-2015: 18 characters from the 31-character set
  ``0-9 A-H J-N P-R T-U W-Y`` (no I, O, Z, S, V); weights 3^i mod 31; check = 31 - (sum mod 31),
  where 31 is written ``0``.
"""

from __future__ import annotations

from datetime import date

_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_ID_CHECK = "10X98765432"

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def id_number_error(value: str) -> str | None:
    """None when ``value`` is a valid 18-character resident ID number, else the reason."""
    if len(value) != 18:
        return "must be 18 characters"
    body, check = value[:17], value[17].upper()
    if not body.isdigit() or not (check.isdigit() or check == "X"):
        return "must be 17 digits followed by a digit or X"
    try:
        born = date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return "contains an impossible birth date"
    if born.year < 1800 or born > date.today():
        return "contains an impossible birth date"
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    if _ID_CHECK[total % 11] != check:
        return "check digit does not match (GB 11643)"
    return None


def normalise_id_number(value: str) -> str:
    return value.strip().upper()


def id_check_digit(body17: str) -> str:
    return _ID_CHECK[sum(int(d) * w for d, w in zip(body17, _ID_WEIGHTS, strict=True)) % 11]


def uscc_error(value: str) -> str | None:
    """None when ``value`` is a valid unified social credit code, else the reason."""
    if len(value) != 18:
        return "must be 18 characters"
    if any(c not in USCC_CHARSET for c in value):
        return "contains characters outside the GB 32100 character set"
    if not value[2:8].isdigit():
        return "characters 3–8 must be the administrative division code"
    if uscc_check_char(value[:17]) != value[17]:
        return "check character does not match (GB 32100)"
    return None


def uscc_check_char(body17: str) -> str:
    total = sum(USCC_CHARSET.index(c) * w for c, w in zip(body17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def normalise_uscc(value: str) -> str:
    return value.strip().upper()


PHONE_PREFIXES = ("13", "14", "15", "16", "17", "18", "19")


def phone_error(value: str) -> str | None:
    if not (len(value) == 11 and value.isdigit() and value[:2] in PHONE_PREFIXES):
        return "must be an 11-digit mainland mobile number"
    return None


def normalise_phone(value: str) -> str:
    v = value.strip().replace(" ", "").replace("-", "")
    if v.startswith("+86"):
        v = v[3:]
    return v
