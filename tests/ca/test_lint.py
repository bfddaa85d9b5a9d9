"""ca.lint walks pkilint's validators its own way (the path/class part of ``match`` remembered per
node shape): it must report exactly what pkilint's own ``ValidatorContainer`` walk reports, finding
for finding and in the same order, on good certificates and on deliberately broken ones — and a
broken one must really produce an error, or the comparison proves nothing."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ca import lint

CA_KEY = ec.generate_private_key(ec.SECP256R1())
LEAF_KEY = ec.generate_private_key(ec.SECP256R1())
ISSUER = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"), x509.NameAttribute(NameOID.COMMON_NAME, "测试签发CA")])
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def _builder(*, subject: x509.Name | None = None, extensions: list[tuple[x509.ExtensionType, bool]] | None = None, days: int = 730) -> x509.CertificateBuilder:
    subject = subject or x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.COMMON_NAME, "张三"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "p0123456789abcdef0123456789abcdef"),
        ]
    )
    b = (
        x509.CertificateBuilder()
        .serial_number(0x1234_5678_9ABC_DEF0_1234)
        .issuer_name(ISSUER)
        .subject_name(subject)
        .public_key(LEAF_KEY.public_key())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=days))
    )
    if extensions is None:
        extensions = _good_extensions()
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    return b


def _good_extensions(*, san: list[x509.GeneralName] | None = None, aia_url: str = "http://127.0.0.1:8000/ca/public-service.cer") -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(True, True, False, False, False, False, False, False, False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]), False),
        (x509.SubjectKeyIdentifier.from_public_key(LEAF_KEY.public_key()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(CA_KEY.public_key()), False),
        (x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier("1.3.6.1.4.1.32473.156.1.1"), None)]), False),
        (
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(aia_url)),
                    x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("http://127.0.0.1:8000/ocsp")),
                ]
            ),
            False,
        ),
        (x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier("http://127.0.0.1:8000/crl/public-service/3.crl")], None, None, None)]), False),
        (x509.SubjectAlternativeName(san or [x509.RFC822Name("zhangsan@example.cn")]), False),
        (x509.UnrecognizedExtension(ObjectIdentifier("1.2.156.10260.4.1.1"), b"\x80\x1211010519491231002X"), False),
    ]


def _replace(exts: list[tuple[x509.ExtensionType, bool]], cls: type, new: tuple[x509.ExtensionType, bool] | None) -> list[tuple[x509.ExtensionType, bool]]:
    out = [e for e in exts if not isinstance(e[0], cls)]
    return out + [new] if new else out


def _der(builder: x509.CertificateBuilder) -> bytes:
    return builder.sign(CA_KEY, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


GOOD = {
    "citizen-like": lambda: _builder(),
    "server-like": lambda: _builder(extensions=_good_extensions(san=[x509.DNSName("www.d1.example.gov.cn"), x509.DNSName("api.d1.example.gov.cn")])),
}

BAD = {
    # each must give at least one ERROR or FATAL finding
    "empty EKU": lambda: _builder(extensions=_replace(_good_extensions(), x509.ExtendedKeyUsage, (x509.ExtendedKeyUsage([]), False))),
    "bad URI in AIA": lambda: _builder(extensions=_good_extensions(aia_url="http://exa mple/ca.cer")),
    "bad DNS name": lambda: _builder(extensions=_good_extensions(san=[x509.DNSName("-bad-.example.gov.cn")])),
    "no SKI, no AKI": lambda: _builder(extensions=_replace(_replace(_good_extensions(), x509.SubjectKeyIdentifier, None), x509.AuthorityKeyIdentifier, None)),
    "critical AIA": lambda: _builder(
        extensions=[(e, True if isinstance(e, x509.AuthorityInformationAccess) else c) for e, c in _good_extensions()]
    ),
    "undecodable key usage": lambda: _builder(
        extensions=_replace(_good_extensions(), x509.KeyUsage, (x509.UnrecognizedExtension(x509.oid.ExtensionOID.KEY_USAGE, b"\x04\x02\x00\xff"), True))
    ),
    "one RDN with two common names": lambda: _builder(
        subject=x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "张三"), x509.NameAttribute(NameOID.COMMON_NAME, "李四")])])
    ),
    "subject e-mail not in the SAN": lambda: _builder(
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "张三"), x509.NameAttribute(NameOID.EMAIL_ADDRESS, "other@example.cn")])
    ),
    "CA in a leaf position without keyCertSign": lambda: _builder(
        extensions=_replace(_good_extensions(), x509.BasicConstraints, (x509.BasicConstraints(ca=True, path_length=None), False))
    ),
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_certificates_same_findings_none_blocking(name: str) -> None:
    der = _der(GOOD[name]())
    ours, stock = lint.lint_der(der), lint.lint_der_stock(der)
    assert ours == stock
    assert not lint.blocking(ours), ours


@pytest.mark.parametrize("name", sorted(BAD))
def test_broken_certificates_same_findings_and_refused(name: str) -> None:
    der = _der(BAD[name]())
    ours, stock = lint.lint_der(der), lint.lint_der_stock(der)
    assert ours == stock
    assert lint.blocking(ours), (name, ours)


def test_walking_twice_gives_the_same_findings_and_shapes_do_not_leak() -> None:
    """The per-shape memory holds no content: a good certificate after a bad one of the same
    shape, and the bad one again, give the stock findings each time."""
    good, bad = _der(GOOD["server-like"]()), _der(BAD["bad DNS name"]())
    for der in (bad, good, bad, good):
        assert lint.lint_der(der) == lint.lint_der_stock(der)
    assert not lint.blocking(lint.lint_der(good)) and lint.blocking(lint.lint_der(bad))
