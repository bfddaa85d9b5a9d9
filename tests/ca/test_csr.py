"""PKCS#10 parsing and key checks against the bad-request fixtures (tests/data/ca/README.md)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca import csr
from core.errors import Kind, Problem
from tests.ca.conftest import DATA, make_csr

BAD = [
    ("empty.csr", "csr.empty", 400),
    ("garbage.csr", "csr.malformed", 400),
    ("truncated.der.csr", "csr.truncated", 400),
    ("trailing_data.der.csr", "csr.trailing_data", 400),
    ("pem_with_junk.csr", "csr.pem_junk", 400),
    ("invalid_signature.der.csr", "csr.bad_signature", 400),
    ("oversized.csr", "csr.too_large", 413),
    ("short_key.der.csr", "csr.weak_key", 422),
    ("small_exponent.der.csr", "csr.weak_exponent", 422),
    ("ca_requested.der.csr", "csr.ca_requested", 422),
    ("ed25519.der.csr", "csr.unsupported_key", 400),
    ("p521.der.csr", "csr.unsupported_curve", 422),
    ("invalid_ec_point.der.csr", "csr.invalid_key", 400),
]


def _check(data: bytes) -> None:
    parsed = csr.parse(data)
    csr.check_key_strength(parsed.public_key)


@pytest.mark.parametrize(("name", "code", "status"), BAD)
def test_bad_request_fixture_is_refused_with_its_own_code(name: str, code: str, status: int) -> None:
    with pytest.raises(Problem) as err:
        _check((DATA / name).read_bytes())
    assert err.value.code == code
    assert err.value.status == status


def test_every_fixture_has_a_distinct_code() -> None:
    assert len({code for _, code, _ in BAD}) == len(BAD)


def test_pem_and_der_parse_to_the_same_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = csr.parse(make_csr(key))
    der = csr.parse(make_csr(key, pem=False))
    assert pem.spki_der == der.spki_der == csr.parse(make_csr(key).replace(b"\n", b"\r\n")).spki_der


def test_legacy_new_certificate_request_armour_is_accepted() -> None:
    pem = make_csr().replace(b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")
    assert isinstance(csr.parse(pem).public_key, ec.EllipticCurvePublicKey)


def test_two_pem_blocks_are_junk() -> None:
    with pytest.raises(Problem) as err:
        csr.parse(make_csr() + make_csr())
    assert err.value.code == "csr.pem_junk"


def test_requested_dns_names_are_read() -> None:
    assert csr.parse(make_csr(dns=("a.example.gov.cn", "b.example.gov.cn"))).dns_names == ("a.example.gov.cn", "b.example.gov.cn")


def test_rsa_2048_with_f4_is_accepted_and_p384_too() -> None:
    csr.check_key_strength(csr.parse(make_csr(rsa.generate_private_key(public_exponent=65537, key_size=2048))).public_key)
    csr.check_key_strength(csr.parse(make_csr(ec.generate_private_key(ec.SECP384R1()))).public_key)


def test_refusals_are_client_errors() -> None:
    for name, _, _ in BAD:
        with pytest.raises(Problem) as err:
            _check((DATA / name).read_bytes())
        assert err.value.kind in (Kind.INVALID_INPUT, Kind.POLICY, Kind.TOO_LARGE)


def test_unknown_version_is_its_own_problem() -> None:
    """cryptography raises InvalidVersion (not a ValueError) for a version other than v1; hypothesis
    found that it escaped as a 500."""
    der = make_csr(pem=False)
    assert der.count(b"\x02\x01\x00") >= 1
    with pytest.raises(Problem) as err:
        csr.parse(der.replace(b"\x02\x01\x00", b"\x02\x01\x20", 1))
    assert err.value.code == "csr.bad_version" and err.value.status == 400 and "32" in err.value.detail
