"""Profiles as data and their small named checks, each exercised alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from ca import hierarchy, profiles
from ca.profiles import IssuanceRequest, Profile, SubjectInfo
from core.errors import Problem

EC_KEY = ec.generate_private_key(ec.SECP256R1()).public_key()


def _req(profile: str = "server", *, dns: tuple[str, ...] = (), key=EC_KEY, **subject: object) -> IssuanceRequest:  # type: ignore[no-untyped-def]
    info = SubjectInfo(**({"org_id": "o1", "org_name": "省数据局", "org_type": "government", "dns_suffixes": ("data.example.gov.cn",)} | subject))  # type: ignore[arg-type]
    return IssuanceRequest(profiles.get_profile(profile), key, info, dns)


def _code(check, req) -> str | None:  # type: ignore[no-untyped-def]
    try:
        check(req)
    except Problem as exc:
        return exc.code
    return None


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("data.example.gov.cn", None),
        ("www.data.example.gov.cn", None),
        ("a.b.data.example.gov.cn", None),
        ("evildata.example.gov.cn", "ca.dns_not_authorised"),  # suffix must match at a label boundary
        ("data.example.gov.cn.attacker.cn", "ca.dns_not_authorised"),
        ("example.gov.cn", "ca.dns_not_authorised"),
    ],
)
def test_dns_within_org_suffixes(name: str, code: str | None) -> None:
    assert _code(profiles.dns_within_org_suffixes, _req(dns=(name,))) == code


@pytest.mark.parametrize(
    ("name", "code"),
    [("www.data.example.gov.cn", None), ("*.data.example.gov.cn", "ca.dns_wildcard"), ("bad_name.example.cn", "ca.dns_invalid"), ("-x.example.cn", "ca.dns_invalid"), ("localhost", "ca.dns_invalid")],
)
def test_dns_names_well_formed(name: str, code: str | None) -> None:
    assert _code(profiles.dns_names_well_formed, _req(dns=(name,))) == code


def test_dns_required_and_forbidden() -> None:
    assert _code(profiles.dns_names_required, _req()) == "ca.dns_required"
    assert _code(profiles.no_dns_names, _req("citizen", dns=("a.example.cn",))) == "ca.dns_not_allowed"


def test_key_allowed_respects_profile_limits() -> None:
    strict = Profile(
        name="strict",
        description="test",
        subject_kind="org",
        validity=timedelta(days=1),
        key_usage=frozenset({"digital_signature"}),
        eku=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        policy=profiles.policy_oid(99),
        checks=(),
        key_types=frozenset({"ec-p384", "rsa"}),
        min_rsa_bits=3072,
    )
    p256 = IssuanceRequest(strict, EC_KEY, SubjectInfo(), ())
    rsa2048 = IssuanceRequest(strict, rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(), SubjectInfo(), ())
    p384 = IssuanceRequest(strict, ec.generate_private_key(ec.SECP384R1()).public_key(), SubjectInfo(), ())
    assert _code(profiles.key_allowed, p256) == "ca.key_type_not_allowed"
    assert _code(profiles.key_allowed, rsa2048) == "csr.weak_key"
    assert _code(profiles.key_allowed, p384) is None


def test_subject_kind_checks() -> None:
    assert _code(profiles.subject_is_person, _req("citizen")) == "ca.subject_not_person"
    assert _code(profiles.subject_is_org, _req("enterprise", person_id="p1")) == "ca.subject_not_org"
    assert _code(profiles.subject_is_department, _req("seal", org_type="enterprise")) == "ca.not_a_department"
    assert _code(profiles.staff_has_department, _req("staff", person_id="p1", org_id=None)) == "ca.staff_without_department"


def test_profile_definitions_are_validated_when_built() -> None:
    with pytest.raises(ValueError):
        Profile(name="Bad Name", description="", subject_kind="org", validity=timedelta(days=1), key_usage=frozenset(), eku=(), policy=profiles.policy_oid(1), checks=())
    with pytest.raises(ValueError):
        Profile(name="toolong", description="", subject_kind="org", validity=timedelta(days=4000), key_usage=frozenset(), eku=(), policy=profiles.policy_oid(1), checks=())
    with pytest.raises(ValueError):
        Profile(name="badku", description="", subject_kind="org", validity=timedelta(days=1), key_usage=frozenset({"sign_everything"}), eku=(), policy=profiles.policy_oid(1), checks=())


def test_unknown_profile_is_a_client_error() -> None:
    with pytest.raises(Problem) as err:
        profiles.get_profile("root")
    assert err.value.code == "ca.unknown_profile" and err.value.status == 400


def test_identity_extension_encoding() -> None:
    person = profiles.identity_extension(SubjectInfo(person_id="p", id_number="11010519491231002X"), "person")
    assert person is not None and person.oid.dotted_string == "1.2.156.10260.4.1.1"
    assert person.value == b"\x80\x12" + b"11010519491231002X"  # [0] IMPLICIT PrintableString
    org = profiles.identity_extension(SubjectInfo(org_id="o", uscc="91350100M000100Y43"), "org")
    assert org is not None and org.oid.dotted_string == "1.2.156.10260.4.1.3"
    assert org.value == b"\x13\x12" + b"91350100M000100Y43"  # PrintableString
    assert profiles.identity_extension(SubjectInfo(common_name="x"), "internal") is None


def test_urls_written_into_certificates() -> None:
    assert profiles.crl_url("https://ca.example.gov.cn", "public-service") == "https://ca.example.gov.cn/crl/public-service.crl"
    assert profiles.ca_issuers_url("https://ca.example.gov.cn", "root") == "https://ca.example.gov.cn/ca/root.cer"
    assert profiles.ocsp_url("https://ca.example.gov.cn") == "https://ca.example.gov.cn/ocsp"


def test_serials_are_random_positive_and_fit_twenty_octets() -> None:
    serials = {hierarchy.new_serial() for _ in range(2000)}
    assert len(serials) == 2000
    for s in serials:
        assert s > 0 and s.bit_length() == 127  # 126 CSPRNG bits under a fixed top bit: 16 DER octets
        assert len(hierarchy.serial_hex(s)) == 32
