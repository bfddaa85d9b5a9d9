"""Password hashing (Argon2id, RFC 9106) and policy (NIST SP 800-63B §5.1.1.2).

Parameters: Argon2id m = 7 MiB, t = 5, p = 1 — one of the five configurations the OWASP Password
Storage Cheat Sheet lists as equivalent in strength (m=47 MiB t=1; m=19 MiB t=2; m=12 MiB t=3;
m=9 MiB t=4; m=7 MiB t=5). Chosen by measurement on this machine (CPU time per verification, one
thread, median of 5 rounds of 10): 14.1 ms for m=7/t=5 against 14.6 (m=9/t=4), 15.1 (m=12/t=3),
17.6 (m=19/t=2) and 50.9 ms (m=47/t=1) — the smaller working set stays in the CPU caches, so the
same OWASP strength costs the server ≈ 20 % less than the first configuration, which leaves room
for ≥ 30 logins/s per core (bench/bench_sso.py, docs/performance.md "SSO").

Hashes embed their parameters, so hashes made with other parameters (the m=19 MiB t=2 ones made
before) still verify, and are re-hashed with these at the next successful login (``needs_rehash``,
``login.check_password``).
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 128  # long enough for passphrases; bounds the work an attacker can make us do

TIME_COST = 5
MEMORY_KIB = 7 * 1024
HASHER = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)

# A dummy hash verified when the login name matches nobody, so timing does not tell whether an
# account exists (the same parameters, so the same cost).
_DUMMY_HASH = HASHER.hash("eauth-no-such-account-placeholder")

# Breached-pattern basics: the most common passwords in public breach corpora (and their Chinese
# favourites) and trivial shapes. Not a substitute for a full breach list, but it refuses the worst.
COMMON = frozenset(
    """
    123456 12345678 123456789 1234567890 12345 1234567 password password1 password123 passw0rd
    qwerty qwerty123 qwertyuiop 1q2w3e4r 1qaz2wsx abc123 abcd1234 a123456 aa123456 111111 000000
    123123 666666 888888 654321 987654321 112233 121212 123321 iloveyou admin admin123 root
    welcome letmein monkey dragon sunshine princess football baseball superman woaini 5201314
    woaini1314 520520 1314520 zxcvbnm asdfghjkl asdf1234 11111111 00000000 88888888 12341234
    147258369 159357 q1w2e3r4 changeme secret test1234 p@ssw0rd p@ssword eauth eauth123
    """.split()
)


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not an account has a password (no enumeration by timing)."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]
    try:
        if stored is None:
            HASHER.verify(_DUMMY_HASH, password + "\x00")
            return False
        return HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return HASHER.check_needs_rehash(stored)


def policy_problems(password: str, *, personal: tuple[str, ...] = ()) -> list[str]:
    """Reasons a new password is refused (empty list: acceptable)."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in COMMON or re.sub(r"\d+$", "", lowered) in COMMON:
        problems.append("too common (found in breached-password lists)")
    if len(set(password)) <= 2:
        problems.append("too repetitive")
    if _is_sequence(lowered):
        problems.append("a simple sequence")
    for value in personal:
        value = (value or "").lower()
        if len(value) >= 6 and (value in lowered or value[-6:] in lowered and len(password) < 16):
            problems.append("must not contain your ID number, phone number or e-mail")
            break
    return problems


def _is_sequence(text: str) -> bool:
    if len(text) < 4:
        return False
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:], strict=False)}
    return steps in ({1}, {-1})
