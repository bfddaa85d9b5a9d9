"""Certificate profiles: data plus small named checks (step-ca's provisioner habit).

A :class:`Profile` fixes key types, validity, key usage / EKU, policy, how the subject is built
from the identity registry (never from the CSR) and which SANs it may carry. Its ``checks`` are
small functions ``(IssuanceRequest) -> None`` raising a problem, each testable alone. Adding a
profile is adding one entry to :data:`PROFILES`; nothing else changes.

Object identifiers used here
----------------------------
- ``1.2.156.10260.4.1.1`` — GM/T 0015 ``IdentifyCode`` (个人身份标识码), non-critical, value
  ``IdentifyCode ::= CHOICE { residenterCardNumber [0] IMPLICIT PrintableString (SIZE (1..20)), … }``:
  the person's resident ID number (GB 11643) for person profiles (citizen, staff).
- ``1.2.156.10260.4.1.3`` — GM/T 0015 ``ICRegistrationNumber`` (工商注册号), non-critical,
  ``PrintableString``: the unified social credit code (GB 32100), which since the 2015
  "three certificates in one" reform replaced the registration number, for organisation profiles
  (enterprise, seal, server). Neither number is put in a person's or an enterprise's DN; those DNs
  carry the platform's opaque subject id in ``serialNumber`` so two people with the same name get
  distinct DNs.
- ``2.5.4.97`` organizationIdentifier (X.520) in a seal's DN: ``NTRCN-<USCC>`` — ETSI EN 319 412-1
  §5.1.4 semantics (``NTR``: national trade register, ``CN``: its country), the form EN 319 412-3
  asks of legal-person (seal) certificates. A seal names its department to whoever checks a sealed
  licence, so the department's public USCC — printed on its licences and stamps — is in the DN
  beside the organisation name (and in the GM/T 0015 extension as for every organisation profile),
  not the platform's internal id.
- Certificate policies: ``1.3.6.1.4.1.32473.156.1.<n>`` under IANA PEN 32473, which RFC 5612
  reserves for documentation — a deliberate placeholder (see :data:`POLICY_ARC`), one sub-arc per
  profile (``.1`` citizen … ``.7`` tsa). Replace with the province's registered arc. (A ``2.25.<uuid>``
  arc was tried: pkilint cannot decode arcs above 32 bits.)
- ``1.3.6.1.5.5.7.3.36`` id-kp-documentSigning (RFC 9336) for seals; ``id-kp-timeStamping``
  (critical, RFC 3161 §2.3) for the TSA; ``id-kp-OCSPSigning`` + ``id-pkix-ocsp-nocheck``
  (RFC 6960 §4.2.2.2) for the delegated OCSP responder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from core.errors import Kind, Problem

# -- object identifiers ----------------------------------------------------------------------------

OID_GMT_IDENTIFY_CODE = ObjectIdentifier("1.2.156.10260.4.1.1")
OID_GMT_IC_REGISTRATION_NUMBER = ObjectIdentifier("1.2.156.10260.4.1.3")
POLICY_ARC = "1.3.6.1.4.1.32473.156.1"  # RFC 5612 documentation PEN: placeholder until a registered arc
OID_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
OID_OCSP_NOCHECK = ObjectIdentifier("1.3.6.1.5.5.7.48.1.5")


def policy_oid(n: int) -> ObjectIdentifier:
    return ObjectIdentifier(f"{POLICY_ARC}.{n}")


# -- URLs written into certificates (the revocation engineer serves /crl/… and /ocsp) --------------


def ca_issuers_url(public_url: str, ca_name: str) -> str:
    """AIA caIssuers: the issuing CA's certificate, DER (RFC 5280 §4.2.2.1)."""
    return f"{public_url}/ca/{ca_name}.cer"


def ocsp_url(public_url: str) -> str:
    return f"{public_url}/ocsp"


def crl_url(public_url: str, ca_name: str, *, serial: str | int | None = None) -> str:
    """CRL distribution point for certificates issued by ``ca_name``: with ``serial``, the CRL
    shard that lists it (``/crl/<ca>/<k>.crl``, see ca.crl); without, the CA's full CRL (used for
    CA certificates signed by the root)."""
    from ca.crl import distribution_point_url

    return distribution_point_url(public_url, ca_name, serial)


# -- the request a profile judges -------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectInfo:
    """The subject as the identity registry knows it (resolved by ``ca.service``)."""

    person_id: str | None = None
    person_name: str | None = None
    id_number: str | None = None
    email: str | None = None
    org_id: str | None = None
    org_name: str | None = None
    org_type: str | None = None
    uscc: str | None = None
    dns_suffixes: tuple[str, ...] = ()
    common_name: str | None = None  # seal name / internal responder name

    @property
    def ref(self) -> str:
        return f"person:{self.person_id}" if self.person_id else f"org:{self.org_id}" if self.org_id else "internal"


@dataclass(frozen=True)
class IssuanceRequest:
    profile: Profile
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    subject: SubjectInfo
    dns_names: tuple[str, ...] = ()


Check = Callable[[IssuanceRequest], None]


# -- named checks ---------------------------------------------------------------------------------


def key_allowed(req: IssuanceRequest) -> None:
    """Key type, curve and size allowed by the profile."""
    key, prof = req.public_key, req.profile
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}.get(key.curve.name)
        if name not in prof.key_types:
            raise Problem(Kind.POLICY, "ca.key_type_not_allowed", f"profile {prof.name} does not accept {key.curve.name} keys")
    elif isinstance(key, rsa.RSAPublicKey):
        if "rsa" not in prof.key_types:
            raise Problem(Kind.POLICY, "ca.key_type_not_allowed", f"profile {prof.name} does not accept RSA keys")
        if key.key_size < prof.min_rsa_bits:
            raise Problem(Kind.POLICY, "csr.weak_key", f"profile {prof.name} needs RSA keys of at least {prof.min_rsa_bits} bits")
    else:
        raise Problem(Kind.POLICY, "ca.key_type_not_allowed", "unsupported key type")


def no_dns_names(req: IssuanceRequest) -> None:
    if req.dns_names:
        raise Problem(Kind.POLICY, "ca.dns_not_allowed", f"profile {req.profile.name} carries no DNS names")


_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def dns_names_required(req: IssuanceRequest) -> None:
    if not req.dns_names:
        raise Problem(Kind.VALIDATION, "ca.dns_required", "a server certificate needs at least one DNS name", fields=[{"name": "dns", "reason": "required"}])
    if len(req.dns_names) > 100:
        raise Problem(Kind.POLICY, "ca.too_many_dns_names", "at most 100 DNS names")


def dns_names_well_formed(req: IssuanceRequest) -> None:
    for name in req.dns_names:
        labels = name.split(".")
        if name.startswith("*."):
            raise Problem(Kind.POLICY, "ca.dns_wildcard", f"wildcard names are not issued: {name}")
        if len(name) > 253 or len(labels) < 2 or not all(_DNS_LABEL.match(label) for label in labels):
            raise Problem(Kind.INVALID_INPUT, "ca.dns_invalid", f"not a valid DNS name: {name!r}")


def dns_within_org_suffixes(req: IssuanceRequest) -> None:
    """Server names must sit under a DNS suffix registered for the department (identity registry)."""
    suffixes = req.subject.dns_suffixes
    for name in req.dns_names:
        if not any(name == s or name.endswith("." + s) for s in suffixes):
            raise Problem(
                Kind.FORBIDDEN,
                "ca.dns_not_authorised",
                f"{name} is not under a DNS suffix registered for {req.subject.org_name or 'this organisation'}",
            )


def subject_is_person(req: IssuanceRequest) -> None:
    if not req.subject.person_id:
        raise Problem(Kind.VALIDATION, "ca.subject_not_person", f"profile {req.profile.name} is issued to a person")


def subject_is_org(req: IssuanceRequest) -> None:
    if not req.subject.org_id or req.subject.person_id:
        raise Problem(Kind.VALIDATION, "ca.subject_not_org", f"profile {req.profile.name} is issued to an organisation")


def subject_is_department(req: IssuanceRequest) -> None:
    """Seals, servers and staff belong to government departments or public institutions."""
    if req.subject.org_type not in ("government", "institution"):
        raise Problem(Kind.POLICY, "ca.not_a_department", f"profile {req.profile.name} is for government departments and public institutions")


def staff_has_department(req: IssuanceRequest) -> None:
    if not req.subject.person_id or not req.subject.org_id:
        raise Problem(Kind.POLICY, "ca.staff_without_department", "a staff certificate needs the person's department (a membership in the registry)")


# -- profiles -------------------------------------------------------------------------------------

KU_SIGNING = frozenset({"digital_signature", "content_commitment"})


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    subject_kind: str  # person | staff | org | department | server | internal
    validity: timedelta
    key_usage: frozenset[str]
    eku: tuple[ObjectIdentifier, ...]
    policy: ObjectIdentifier
    checks: tuple[Check, ...]
    key_types: frozenset[str] = frozenset({"ec-p256", "ec-p384", "rsa"})
    min_rsa_bits: int = 2048
    eku_critical: bool = False
    internal: bool = False  # keys generated in our HSM only (issue_for_public_key), never from a CSR
    ocsp_nocheck: bool = False
    revocation_pointers: bool = True  # AIA OCSP + CDP
    email_san: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,31}", self.name):
            raise ValueError(f"bad profile name {self.name!r}")
        if self.validity <= timedelta(0) or self.validity > timedelta(days=3650):
            raise ValueError(f"profile {self.name}: validity must be within (0, 10 years]")
        unknown = self.key_usage - _KU_FIELDS
        if unknown:
            raise ValueError(f"profile {self.name}: unknown key usages {sorted(unknown)}")

    def run_checks(self, req: IssuanceRequest) -> None:
        for check in self.checks:
            check(req)


_KU_FIELDS = frozenset(
    {"digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign"}
)


def key_usage(names: frozenset[str], public_key: object) -> x509.KeyUsage:
    names = set(names)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        names.discard("key_encipherment")  # RSA key transport only (RFC 5480 §3)
    return x509.KeyUsage(
        digital_signature="digital_signature" in names,
        content_commitment="content_commitment" in names,
        key_encipherment="key_encipherment" in names,
        data_encipherment="data_encipherment" in names,
        key_agreement="key_agreement" in names,
        key_cert_sign="key_cert_sign" in names,
        crl_sign="crl_sign" in names,
        encipher_only=False,
        decipher_only=False,
    )


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="citizen",
            description="个人证书 — a citizen's signing and login certificate",
            subject_kind="person",
            validity=timedelta(days=730),
            key_usage=KU_SIGNING,
            eku=(ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION),
            policy=policy_oid(1),
            checks=(subject_is_person, key_allowed, no_dns_names),
            email_san=True,
        ),
        Profile(
            name="enterprise",
            description="机构证书 — an organisation's certificate",
            subject_kind="org",
            validity=timedelta(days=730),
            key_usage=KU_SIGNING,
            eku=(ExtendedKeyUsageOID.CLIENT_AUTH, OID_DOCUMENT_SIGNING),
            policy=policy_oid(2),
            checks=(subject_is_org, key_allowed, no_dns_names),
        ),
        Profile(
            name="staff",
            description="工作人员证书 — a government employee, with department",
            subject_kind="staff",
            validity=timedelta(days=730),
            key_usage=KU_SIGNING,
            eku=(ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION),
            policy=policy_oid(3),
            checks=(subject_is_person, staff_has_department, subject_is_department, key_allowed, no_dns_names),
            email_san=True,
        ),
        Profile(
            name="seal",
            description="电子印章证书 — a department's electronic seal (document signing)",
            subject_kind="department",
            validity=timedelta(days=1095),
            key_usage=KU_SIGNING,
            # emailProtection beside documentSigning: NSS (poppler's pdfsig, Firefox) validates PDF
            # signers for the e-mail signer usage and refuses a certificate whose EKU lacks it.
            eku=(OID_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION),
            policy=policy_oid(4),
            checks=(subject_is_org, subject_is_department, key_allowed, no_dns_names),
        ),
        Profile(
            name="server",
            description="服务器证书 — TLS for a department's server",
            subject_kind="server",
            validity=timedelta(days=397),
            key_usage=frozenset({"digital_signature", "key_encipherment"}),
            eku=(ExtendedKeyUsageOID.SERVER_AUTH,),
            policy=policy_oid(5),
            checks=(subject_is_org, subject_is_department, key_allowed, dns_names_required, dns_names_well_formed, dns_within_org_suffixes),
        ),
        Profile(
            name="ocsp",
            description="OCSP responder (internal, delegated by an issuing CA)",
            subject_kind="internal",
            validity=timedelta(days=30),
            key_usage=frozenset({"digital_signature"}),
            eku=(ExtendedKeyUsageOID.OCSP_SIGNING,),
            policy=policy_oid(6),
            checks=(key_allowed, no_dns_names),
            internal=True,
            ocsp_nocheck=True,
            revocation_pointers=False,  # id-pkix-ocsp-nocheck: clients do not check this certificate
        ),
        Profile(
            name="tsa",
            description="Timestamp unit (internal, RFC 3161)",
            subject_kind="internal",
            validity=timedelta(days=1825),
            key_usage=frozenset({"digital_signature", "content_commitment"}),
            eku=(ExtendedKeyUsageOID.TIME_STAMPING,),
            eku_critical=True,  # RFC 3161 §2.3: the only EKU, and critical
            policy=policy_oid(7),
            checks=(key_allowed, no_dns_names),
            internal=True,
        ),
    )
}


def get_profile(name: str) -> Profile:
    profile = PROFILES.get(name)
    if profile is None:
        raise Problem(
            Kind.INVALID_INPUT,
            "ca.unknown_profile",
            f"unknown profile {name!r} (known: {', '.join(sorted(PROFILES))})",
        )
    return profile


# -- building the certificate's subject and extensions ---------------------------------------------


def subject_name(profile: Profile, subject: SubjectInfo, dns_names: tuple[str, ...]) -> x509.Name:
    """The DN, from the registry only (RFC 5280 §4.1.2.6). Identity numbers stay out of it."""
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    kind = profile.subject_kind
    if kind == "person":
        attrs += [x509.NameAttribute(NameOID.COMMON_NAME, _req(subject.person_name)), x509.NameAttribute(NameOID.SERIAL_NUMBER, _req(subject.person_id))]
    elif kind == "staff":
        attrs += [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _req(subject.org_name)),
            x509.NameAttribute(NameOID.COMMON_NAME, _req(subject.person_name)),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, _req(subject.person_id)),
        ]
    elif kind == "org":
        attrs += [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _req(subject.org_name)),
            x509.NameAttribute(NameOID.COMMON_NAME, _req(subject.org_name)),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, _req(subject.org_id)),
        ]
    elif kind == "department":  # a seal: the department by name and USCC (see the module docstring)
        attrs += [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _req(subject.org_name)),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"NTRCN-{_req(subject.uscc)}"),
            x509.NameAttribute(NameOID.COMMON_NAME, subject.common_name or f"{subject.org_name}电子印章"),
        ]
    elif kind == "server":
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, _req(subject.org_name)), x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]
    else:  # internal
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eAuth"), x509.NameAttribute(NameOID.COMMON_NAME, _req(subject.common_name))]
    return x509.Name(attrs)


def _req(value: str | None) -> str:
    if not value:
        raise Problem(Kind.VALIDATION, "ca.subject_incomplete", "the registry record lacks a field this profile needs")
    return value[:64]  # ub-common-name etc. (RFC 5280 Appendix A.1)


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def identity_extension(subject: SubjectInfo, kind: str) -> x509.UnrecognizedExtension | None:
    """GM/T 0015-style private extension carrying the ID number or the USCC (see module docstring)."""
    if kind in ("person", "staff") and subject.id_number:
        value = subject.id_number.encode("ascii")
        return x509.UnrecognizedExtension(OID_GMT_IDENTIFY_CODE, b"\x80" + _der_len(len(value)) + value)
    if kind in ("org", "department", "server") and subject.uscc:
        value = subject.uscc.encode("ascii")
        return x509.UnrecognizedExtension(OID_GMT_IC_REGISTRATION_NUMBER, b"\x13" + _der_len(len(value)) + value)
    return None


def build_extensions(
    profile: Profile,
    *,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer_public_key: object,
    subject: SubjectInfo,
    dns_names: tuple[str, ...],
    public_url: str,
    ca_name: str,
    serial: int | None = None,
) -> list[tuple[x509.ExtensionType, bool]]:
    """(extension, critical) pairs in the order they appear in the certificate."""
    exts: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (key_usage(profile.key_usage, public_key), True),
        (x509.ExtendedKeyUsage(list(profile.eku)), profile.eku_critical),
        (x509.SubjectKeyIdentifier.from_public_key(public_key), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), False),  # type: ignore[arg-type]
        (x509.CertificatePolicies([x509.PolicyInformation(profile.policy, None)]), False),
    ]
    access = [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(ca_issuers_url(public_url, ca_name)))]
    if profile.revocation_pointers:
        access.insert(0, x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url(public_url))))
        exts.append(
            (
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url(public_url, ca_name, serial=serial))], None, None, None)]
                ),
                False,
            )
        )
    exts.append((x509.AuthorityInformationAccess(access), False))
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    if profile.email_san and subject.email:
        sans.append(x509.RFC822Name(subject.email))
    if sans:
        exts.append((x509.SubjectAlternativeName(sans), False))
    if profile.ocsp_nocheck:
        exts.append((x509.OCSPNoCheck(), False))
    ident = identity_extension(subject, profile.subject_kind)
    if ident is not None:
        exts.append((ident, False))
    return exts
