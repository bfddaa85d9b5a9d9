"""Valid test identities: resident ID numbers (GB 11643), USCCs (GB 32100), phones; never repeated."""

from __future__ import annotations

import itertools
import os
import uuid

_counter = itertools.count(1)


def _unique() -> int:
    # pid + counter + randomness: unique across xdist workers and within a run.
    return (os.getpid() * 1_000_003 + next(_counter) * 7919 + uuid.uuid4().int) % 10**12


def unique_id_number(birth: str = "19900101") -> str:
    """A valid GB 11643 resident ID number not used before in this run."""
    from identity.numbers import id_check_digit

    seq = _unique() % 1000
    region = str(110000 + _unique() % 9999).zfill(6)
    body = f"{region}{birth}{seq:03d}"
    return body + id_check_digit(body)


def unique_uscc() -> str:
    """A valid GB 32100 unified social credit code not used before in this run."""
    from identity.numbers import USCC_CHARSET, uscc_check_char

    rnd = _unique() * 104729 + uuid.uuid4().int
    org_code = "".join(USCC_CHARSET[(rnd >> (5 * i)) % 31] for i in range(9))
    body = f"91{110000 + rnd % 9999:06d}{org_code}"
    return body + uscc_check_char(body)


def unique_phone() -> str:
    return "139" + f"{_unique() % 10**8:08d}"


