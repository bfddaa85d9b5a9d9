"""The TSA query parser: the DER fast path must agree with the general (asn1crypto) parser on every
query it accepts, and leave everything else to it (property tests, no platform needed)."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signing.rfc3161 import ACCEPTED_HASHES, TimestampRejected, _fast_query, _general_query, build_query, parse_query

POLICY = "2.25.171045935291426958093428541212387916841"
NAMES = sorted({name: size for name, size in ACCEPTED_HASHES.values()}.items())


def _general(body: bytes):  # type: ignore[no-untyped-def]
    try:
        return _general_query(body, POLICY)
    except TimestampRejected as exc:
        return exc.failure


queries = st.builds(
    lambda named, nonce, cert_req, policy, salt: build_query(bytes([salt]) * named[1], named[0], nonce=nonce, cert_req=cert_req, policy=policy),
    st.sampled_from(NAMES),
    st.one_of(st.none(), st.integers(min_value=0, max_value=(1 << 520))),
    st.booleans(),
    st.sampled_from([None, POLICY, "1.2.3.4"]),
    st.integers(min_value=0, max_value=255),
)


@settings(max_examples=400, deadline=None)
@given(queries)
def test_fast_path_agrees_with_the_general_parser(body: bytes) -> None:
    fast = _fast_query(body, POLICY)
    general = _general(body)
    if fast is not None:
        assert fast == general
    try:
        combined = parse_query(body, policy=POLICY)
    except TimestampRejected as exc:
        combined = exc.failure
    assert combined == general  # the public parser answers exactly what the general one does


@settings(max_examples=600, deadline=None)
@given(queries, st.data())
def test_mutated_queries_never_disagree(body: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    mutated = body[:index] + bytes([value]) + body[index + 1 :]
    cut = data.draw(st.integers(min_value=1, max_value=len(mutated)))
    for candidate in (mutated, mutated[:cut], mutated + b"\x00"):
        fast = _fast_query(candidate, POLICY)
        if fast is not None:
            assert _general(candidate) == fast, candidate.hex()


@pytest.mark.parametrize("args", [["-sha256", "-cert"], ["-sha384"], ["-sha512", "-no_nonce"], ["-sha256", "-tspolicy", POLICY]])
def test_openssl_queries_take_the_fast_path(tmp_path, args) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "d").write_bytes(b"data")
    subprocess.run(["openssl", "ts", "-query", "-data", str(tmp_path / "d"), *args, "-out", str(tmp_path / "q")], check=True, capture_output=True)
    body = (tmp_path / "q").read_bytes()
    fast = _fast_query(body, POLICY)
    assert fast is not None and fast == _general(body)
