"""Shared pieces of the hostile-input tests: mutation strategies for DER/PEM/PDF/JSON, the
"a result or a 4xx problem, nothing else" check, and a tally of how many cases ran (printed at the
end of the run by ``tests/reliability/conftest.py`` — the issue asks for the figure).
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from core.errors import Problem

# target -> Counter(outcome -> cases). Outcome: "ok", a problem code, "http 4xx"...
TALLY: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def record(target: str, outcome: str) -> None:
    TALLY[target][outcome] += 1


def cases(target: str) -> int:
    return sum(TALLY[target].values())


def expect_result_or_4xx(target: str, fn: Callable[..., Any], *args: Any, allowed: tuple[type[BaseException], ...] = (), **kwargs: Any) -> Any:
    """Call ``fn``: a return value, a 4xx :class:`Problem` or one of ``allowed`` (a protocol's own
    rejection type) pass; anything else — ``TypeError``, ``RecursionError``, a 5xx problem — fails."""
    try:
        out = fn(*args, **kwargs)
    except Problem as exc:
        assert 400 <= exc.status < 500, f"{target}: a {exc.status} problem {exc.code!r} for hostile input: {exc.detail}"
        record(target, exc.code)
        return exc
    except allowed as exc:
        record(target, type(exc).__name__ + ":" + str(getattr(exc, "reason", getattr(exc, "failure", ""))))
        return exc
    record(target, "ok")
    return out


# -- DER ---------------------------------------------------------------------------------------------


def der_length_offsets(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[tuple[int, int]]:
    """(offset, size) of every DER length field in ``data`` (walking constructed values), so a
    mutation can aim at the bytes parsers trust most."""
    end = len(data) if end is None else end
    out: list[tuple[int, int]] = []
    i = start
    while i + 2 <= end and depth < 12:
        tag = data[i]
        j = i + 1
        if tag & 0x1F == 0x1F:  # high tag number form
            while j < end and data[j] & 0x80:
                j += 1
            j += 1
        if j >= end:
            break
        first = data[j]
        if first < 0x80:
            size, hdr = first, 1
        else:
            n = first & 0x7F
            if n == 0 or n > 4 or j + 1 + n > end:
                break
            size, hdr = int.from_bytes(data[j + 1 : j + 1 + n], "big"), 1 + n
        out.append((j, hdr))
        body = j + hdr
        if body + size > end:
            break
        if tag & 0x20:  # constructed
            out.extend(der_length_offsets(data, body, body + size, depth + 1))
        elif tag in (0x03, 0x04) and size > 2:  # BIT/OCTET STRING often wrap DER (extensions, keys)
            inner = body + (1 if tag == 0x03 else 0)
            if inner < body + size and data[inner] in (0x30, 0x31, 0x02, 0x04, 0x03):
                out.extend(der_length_offsets(data, inner, body + size, depth + 1))
        i = body + size
    return out


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, *, der: bool = True, max_ops: int = 3) -> bytes:
    """``seed`` after 1..max_ops of: bit flip, truncation, byte insertion/deletion, a DER length
    field rewritten (±1, 0, 0x80 indefinite, 0xFF…, long form), a chunk duplicated."""
    data = bytearray(seed)
    ops = ["flip", "truncate", "insert", "delete", "duplicate"] + (["length"] * 3 if der else [])
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(ops))
        if not data:
            data += draw(st.binary(min_size=1, max_size=8))
            continue
        if op == "flip":
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            i = draw(st.integers(0, len(data) - 1))
            del data[i : i + draw(st.integers(1, 16))]
        elif op == "duplicate":
            i = draw(st.integers(0, len(data) - 1))
            j = min(len(data), i + draw(st.integers(1, 64)))
            data[j:j] = data[i:j]
        else:
            fields = der_length_offsets(bytes(data))
            if not fields:
                continue
            off, size = draw(st.sampled_from(fields))
            current = int.from_bytes(data[off + 1 : off + size], "big") if size > 1 else data[off]
            new = draw(
                st.sampled_from(
                    [
                        bytes([max(0, min(0x7F, current + 1))]),
                        bytes([max(0, min(0x7F, current - 1))]),
                        b"\x00",
                        b"\x80",  # indefinite length: not DER
                        b"\x84\xff\xff\xff\xff",  # 4 GiB
                        b"\x85\x01\x00\x00\x00\x00",  # 5 length octets
                        b"\x81" + bytes([current & 0x7F]),  # non-minimal long form
                        b"\x82" + min(current + 300, 0xFFFF).to_bytes(2, "big"),
                    ]
                )
            )
            data[off : off + size] = new
    return bytes(data)


def hostile_bytes(seed: bytes, *, der: bool = True, max_size: int = 512) -> st.SearchStrategy[bytes]:
    """Random bytes, mutations of a valid ``seed``, and the seed itself (the harness must also let
    a valid input through)."""
    return st.one_of(st.binary(max_size=max_size), mutated(seed, der=der), mutated(seed, der=der, max_ops=8), st.just(seed))


# -- JSON --------------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)


def deep_json(depth: int, *, kind: str = "list") -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


# -- real credentials on the platform under test -------------------------------------------------------


def operator_token(rt: Any, *, roles: frozenset[str] | None = None, scope: str = "openid") -> str:
    """An HSM-signed access token of an operator holding every role (or ``roles``), issued to a
    first-party client at acr 2 — what the console holds after an operator's SSO login."""
    from auth_service.oidc.access_token import issue_access_token
    from auth_service.service import register_client
    from core.security import Actor, Role
    from identity import service as identity
    from tests.factories import unique_id_number

    actor = Actor.cli("hostile-tests")
    with rt.db.transaction() as db:
        person = identity.register_person(rt, db, actor, name="王五", id_number=unique_id_number())
        identity.set_operator(rt, db, actor, person_id=person.id, roles=roles if roles is not None else {r.value for r in Role})
        client, _ = register_client(rt, db, actor, name="hostile console", redirect_uris=["https://console.example.gov.cn/cb"], first_party=True)
    token, _exp, _jti = issue_access_token(rt, client_id=client.client_id, subject=person.id, scope=scope, acr="2", auth_time=1, session_id="hostile")
    return token


def oidc_client(rt: Any) -> tuple[str, str, str]:
    """(client_id, secret, redirect_uri) of a registered confidential relying party."""
    from auth_service.service import register_client
    from core.security import Actor

    redirect = "https://rp.example.gov.cn/cb"
    with rt.db.transaction() as db:
        client, secret = register_client(rt, db, Actor.cli("hostile-tests"), name="hostile rp", redirect_uris=[redirect],
                                         grant_types=["authorization_code", "refresh_token", "client_credentials"], scopes=["openid", "profile"])
    assert secret is not None
    return client.client_id, secret, redirect
