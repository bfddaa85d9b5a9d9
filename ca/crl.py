"""Certificate revocation lists (RFC 5280 §5): building, HSM signing, publication, look-up.

Scheme: **sharded CRLs with an Issuing Distribution Point** (docs/revocation.md says why, against
delta CRLs). Every certificate an issuing CA signs carries one CDP URL naming its shard,
``/crl/<ca>/<k>.crl`` with ``k = serial mod SHARDS``; that shard's CRL lists only the revoked
certificates of that shard and carries a critical IDP naming the same URL (RFC 5280 §5.2.5), so a
relying party downloads 1/SHARDS of the revocation data. A *full* CRL (no IDP, every revoked
certificate of the CA, ``/crl/<ca>.crl``) is published beside the shards for LTV embedding and
for relying parties that want everything. The root CA publishes one full CRL (it signs few
certificates), and only at ceremonies (``eauth crl publish --ca root``, ``eauth init``).

The TBSCertList is encoded here by hand (a few dozen lines of DER) rather than through
``CertificateRevocationListBuilder``: at a million entries the builder's per-entry Python objects
cost far more time and memory than the bytes themselves (bench/bench_crl.py measures both). The bytes are
then signed by the CA key inside the HSM and checked by ``openssl crl`` and pkilint in the tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ca.models import ON_HOLD, REVOKED, CertificateAuthority, Certificate, Crl, RevocationState
from core import clock
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor

SHARDS = 16  # fixed for the life of a CA: it is baked into every certificate's CDP
FULL = "full"
ROOT_CRL_VALIDITY = timedelta(days=180)  # the root key is used only at ceremonies
KEEP_NUMBERS = 2  # published CRL numbers kept per CA (current + previous)

# RFC 5280 §5.3.1 CRLReason codes, by the names used throughout the platform.
REASON_CODES = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "removeFromCRL": 8,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}


# -- URLs ------------------------------------------------------------------------------------------


def shard_of(serial: str | int) -> int:
    value = int(serial, 16) if isinstance(serial, str) else serial
    return value % SHARDS


def crl_path(ca_name: str, scope: str = FULL) -> str:
    return f"/crl/{ca_name}.crl" if scope == FULL else f"/crl/{ca_name}/{scope}.crl"


def distribution_point_url(public_url: str, ca_name: str, serial: str | int | None, *, sharded: bool = True) -> str:
    """The CDP for a certificate ``ca_name`` signs: its shard, or the full CRL (root-issued CA
    certificates, or when the serial is not known)."""
    if sharded and serial is not None:
        return public_url + crl_path(ca_name, str(shard_of(serial)))
    return public_url + crl_path(ca_name)


# -- DER ---------------------------------------------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _integer(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return _tlv(0x02, body)


def _serial_der(serial_hex: str) -> bytes:
    """INTEGER from the stored lowercase hex serial (positive: a leading 00 when the top bit is set)."""
    if len(serial_hex) & 1:
        serial_hex = "0" + serial_hex
    body = bytes.fromhex(serial_hex)
    if body[0] & 0x80:
        body = b"\x00" + body
    return b"\x02" + _len(len(body)) + body


def _time(dt: datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    dt = dt.astimezone(UTC)
    if 1950 <= dt.year < 2050:
        return _tlv(0x17, dt.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, dt.strftime("%Y%m%d%H%M%SZ").encode())


def _time_from_iso(value: str, *, generalized: bool = False) -> bytes:
    """Fast path for the platform's ``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00`` strings."""
    if value.endswith("+00:00") and len(value) >= 25 and value[4] == "-" and value[10] == "T":
        digits = value[0:4] + value[5:7] + value[8:10] + value[11:13] + value[14:16] + value[17:19]
        year = int(value[0:4])
        if not generalized and 1950 <= year < 2050:
            return b"\x17\x0d" + digits[2:].encode() + b"Z"
        return b"\x18\x0f" + digits.encode() + b"Z"
    dt = datetime.fromisoformat(value)
    if generalized:
        return _tlv(0x18, dt.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode())
    return _time(dt)


def _extension(oid_der: bytes, value: bytes, *, critical: bool = False) -> bytes:
    return _seq(oid_der, b"\x01\x01\xff" if critical else b"", _tlv(0x04, value))


_OID_REASON = bytes.fromhex("0603551d15")  # 2.5.29.21 id-ce-cRLReasons
_OID_INVALIDITY = bytes.fromhex("0603551d18")  # 2.5.29.24 id-ce-invalidityDate
_OID_AKI = bytes.fromhex("0603551d23")
_OID_CRL_NUMBER = bytes.fromhex("0603551d14")
_OID_IDP = bytes.fromhex("0603551d1c")

# reasonCode entry extensions, pre-encoded. "unspecified" is never written: RFC 5280 §5.3.1 says
# the extension SHOULD be absent rather than carry it.
_REASON_EXT = {name: _extension(_OID_REASON, bytes((0x0A, 0x01, code))) for name, code in REASON_CODES.items() if code != 0}

_SIG_ALGS = {
    "ecdsa-sha256": bytes.fromhex("300a06082a8648ce3d040302"),
    "ecdsa-sha384": bytes.fromhex("300a06082a8648ce3d040303"),
    "rsa-sha256": bytes.fromhex("300d06092a864886f70d01010b0500"),
}


def _signature_scheme(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ecdsa-sha384" if key.curve.key_size >= 384 else "ecdsa-sha256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa-sha256"
    raise Problem(Kind.INVALID_CONFIG, "crl.unsupported_key", "CRL signing key must be EC or RSA")


def _sign(key: object, scheme: str, data: bytes) -> bytes:
    if scheme == "ecdsa-sha256":
        return key.sign(data, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
    if scheme == "ecdsa-sha384":
        return key.sign(data, ec.ECDSA(hashes.SHA384()))  # type: ignore[attr-defined]
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[attr-defined]


# (serial hex, revocation date ISO, reason name | None, invalidity date ISO | None)
EntryRow = tuple[str, str, str | None, str | None]


_ISO_SEPARATORS = str.maketrans("", "", "-T:")


def encode_entries(rows: Iterable[EntryRow]) -> Iterator[bytes]:
    """revokedCertificates entries (RFC 5280 §5.1.2.6 and §5.3).

    The common case is inlined (a million entries per publication, bench/bench_crl.py): a
    32-hex-digit serial without sign octet (``ca.hierarchy.new_serial``), a UTC time string from
    this platform (``YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00``, years 1950-2049: UTCTime) and a short
    entry; anything else takes the general helpers."""
    reason_ext = _REASON_EXT
    fromhex = bytes.fromhex
    strip = _ISO_SEPARATORS
    for serial, revoked_at, reason, invalidity in rows:
        exts = reason_ext.get(reason, b"") if reason else b""
        if invalidity:
            exts += _extension(_OID_INVALIDITY, _time_from_iso(invalidity, generalized=True))
        if len(serial) == 32 and serial[0] < "8":
            serial_der = b"\x02\x10" + fromhex(serial)
        else:
            serial_der = _serial_der(serial)
        if len(revoked_at) >= 25 and revoked_at[10] == "T" and revoked_at.endswith("+00:00") and "1950" <= revoked_at[:4] < "2050":
            time_der = b"\x17\x0d" + revoked_at[2:19].translate(strip).encode() + b"Z"
        else:
            time_der = _time_from_iso(revoked_at)
        body = serial_der + time_der + ((b"\x30" + _len(len(exts)) + exts) if exts else b"")
        n = len(body)
        yield (b"\x30" + bytes((n,)) + body) if n < 0x80 else (b"\x30" + _len(n) + body)


def aki_of(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]


def build_crl(
    key: object,
    ca_cert: x509.Certificate,
    rows: Iterable[EntryRow],
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    idp_url: str | None = None,
) -> tuple[bytes, int]:
    """A signed CertificateList (DER) and its entry count. ``idp_url``: a shard's distribution
    point, written as a critical IDP with onlyContainsUserCerts (RFC 5280 §5.2.5)."""
    return sign_crl(key, ca_cert, list(encode_entries(rows)), number=number, this_update=this_update, next_update=next_update, idp_url=idp_url)


def sign_crl(
    key: object,
    ca_cert: x509.Certificate,
    entries: Sequence[bytes],
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    idp_url: str | None = None,
) -> tuple[bytes, int]:
    """:func:`build_crl` from entries already encoded by :func:`encode_entries` (publication
    encodes each entry once and shares the bytes between the full CRL and its shard)."""
    scheme = _signature_scheme(key)
    exts = [
        _extension(_OID_AKI, aki_of(ca_cert).public_bytes()),
        _extension(_OID_CRL_NUMBER, x509.CRLNumber(number).public_bytes()),
    ]
    if idp_url is not None:
        idp = x509.IssuingDistributionPoint(
            full_name=[x509.UniformResourceIdentifier(idp_url)],
            relative_name=None,
            only_contains_user_certs=True,
            only_contains_ca_certs=False,
            only_some_reasons=None,
            indirect_crl=False,
            only_contains_attribute_certs=False,
        )
        exts.append(_extension(_OID_IDP, idp.public_bytes(), critical=True))
    revoked = b""
    if entries:  # RFC 5280 §5.1.2.6: absent (not empty) when nothing is revoked
        body = b"".join(entries)
        revoked = b"\x30" + _len(len(body)) + body
        del body
    tbs = _seq(
        b"\x02\x01\x01",  # version v2
        _SIG_ALGS[scheme],
        ca_cert.subject.public_bytes(),
        _time(this_update),
        _time(next_update),
        revoked,
        _tlv(0xA0, _seq(*exts)),
    )
    del revoked
    signature = _sign(key, scheme, tbs)
    der = _seq(tbs, _SIG_ALGS[scheme], _tlv(0x03, b"\x00" + signature))
    return der, len(entries)


# -- publication --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedCrl:
    issuer: str
    scope: str
    number: int
    this_update: str
    next_update: str
    entries: int
    sha256: str
    path: str


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def revocation_state(db: Session, issuer: str, *, lock: bool = True) -> RevocationState:
    """The CA's counters row (created on first use), locked for the rest of the transaction."""
    stmt = select(RevocationState).where(RevocationState.issuer == issuer)
    if lock:
        stmt = stmt.with_for_update()
    state = db.execute(stmt).scalar_one_or_none()
    if state is None:
        state = RevocationState(issuer=issuer, crl_number=0, changes=0, published_changes=0)
        db.add(state)
        db.flush()
    return state


def authority(db: Session, ca_name: str) -> tuple[CertificateAuthority, x509.Certificate]:
    ca = db.get(CertificateAuthority, ca_name)
    if ca is None or ca.der is None:
        raise Problem(Kind.NOT_FOUND, "ca.unknown_authority", f"no certificate authority named {ca_name!r}")
    return ca, x509.load_der_x509_certificate(ca.der)


def revoked_rows(db: Session, issuer: str, *, not_expired_before: str) -> list[EntryRow]:
    """Revoked and held certificates of ``issuer`` still worth listing. An entry stays until it has
    appeared on one CRL issued after the certificate expired (RFC 5280 §3.3)."""
    stmt = (
        select(Certificate.serial, Certificate.revoked_at, Certificate.revocation_reason, Certificate.invalidity_date)
        .where(Certificate.issuer == issuer, Certificate.status.in_((REVOKED, ON_HOLD)), Certificate.not_after >= not_expired_before)
        .order_by(Certificate.serial)
    )
    # Core rows streamed from a server-side cursor: no ORM row objects (4x faster at a million).
    result = db.connection().execute(stmt.execution_options(stream_results=True, yield_per=50_000))
    return [(s, r or "", reason, inv) for s, r, reason, inv in result]


def publish_crls(rt: Runtime, db: Session, actor: Actor, ca_name: str, *, trigger: str = "manual") -> list[PublishedCrl]:
    """Sign and store the CA's CRLs (full, plus every shard for an issuing CA) under the next CRL
    number, in the caller's transaction, audited. The CA's state row is locked first, so two
    processes never publish the same number."""
    ca, ca_cert = authority(db, ca_name)
    state = revocation_state(db, ca_name)
    changes = state.changes
    now = clock.now().replace(microsecond=0)
    validity = ROOT_CRL_VALIDITY if ca.is_root else timedelta(hours=rt.settings.crl_validity_hours)
    this_update, next_update = now, now + validity
    number = state.crl_number + 1
    rows = revoked_rows(db, ca_name, not_expired_before=_iso(now - validity))
    total = len(rows)
    # Each entry is encoded once; the full CRL and the entry's shard share the bytes, and the
    # rows are dropped before signing (bench/bench_crl.py: 1,000,000 entries within 15 s / 1 GiB).
    encoded = list(encode_entries(rows))
    shard_of_entry = [shard_of(row[0]) for row in rows] if not ca.is_root else []
    del rows
    key = rt.token.key(ca.key_label)
    scopes: list[tuple[str, list[bytes], str | None]] = [(FULL, encoded, None)]
    if not ca.is_root:
        shards: list[list[bytes]] = [[] for _ in range(SHARDS)]
        for k, entry in zip(shard_of_entry, encoded, strict=True):
            shards[k].append(entry)
        del shard_of_entry
        for k, shard_entries in enumerate(shards):
            scopes.append((str(k), shard_entries, rt.settings.public_url + crl_path(ca_name, str(k))))
    published: list[PublishedCrl] = []
    for scope, scope_entries, idp_url in scopes:
        der, count = sign_crl(key, ca_cert, scope_entries, number=number, this_update=this_update, next_update=next_update, idp_url=idp_url)
        digest = hashlib.sha256(der).hexdigest()
        db.add(
            Crl(
                id=f"{ca_name}:{scope}:{number}",
                issuer=ca_name,
                scope=scope,
                number=number,
                this_update=_iso(this_update),
                next_update=_iso(next_update),
                entries=count,
                sha256=digest,
                der=der,
            )
        )
        published.append(PublishedCrl(ca_name, scope, number, _iso(this_update), _iso(next_update), count, digest, crl_path(ca_name, scope)))
    db.execute(delete(Crl).where(Crl.issuer == ca_name, Crl.number <= number - KEEP_NUMBERS))
    db.execute(
        update(RevocationState)
        .where(RevocationState.issuer == ca_name)
        .values(crl_number=number, published_changes=changes, published_at=_iso(now), next_update=_iso(next_update))
    )
    rt.audit.record(
        db,
        actor=actor,
        action="ca.crl.publish",
        target=f"ca:{ca_name}",
        details={"number": number, "entries": total, "scopes": len(scopes), "next_update": _iso(next_update), "trigger": trigger},
    )
    return published


def latest_crl(db: Session, ca_name: str, scope: str = FULL) -> Crl | None:
    return db.execute(
        select(Crl).where(Crl.issuer == ca_name, Crl.scope == scope).order_by(Crl.number.desc()).limit(1)
    ).scalar_one_or_none()


def current_crl(rt: Runtime, db: Session, ca_name: str, scope: str = FULL) -> bytes:
    """The CA's current CRL (DER), for LTV embedding: the stored one while it is within its
    validity, otherwise a new one published now (the issuing CA only; the root's is a ceremony)."""
    crl = latest_crl(db, ca_name, scope)
    if crl is not None and crl.next_update > _iso(clock.now()):
        return crl.der
    ca, _ = authority(db, ca_name)
    if ca.is_root and crl is not None:
        return crl.der  # stale root CRL: publishing one needs the root ceremony
    for item in publish_crls(rt, db, Actor.system("crl"), ca_name, trigger="on-demand"):
        if item.scope == scope:
            found = latest_crl(db, ca_name, scope)
            assert found is not None
            return found.der
    raise Problem(Kind.NOT_FOUND, "crl.unknown_scope", f"CA {ca_name!r} publishes no CRL {scope!r}")


def due_for_publication(db: Session, *, debounce: timedelta = timedelta(seconds=1)) -> list[str]:
    """Issuing CAs whose CRLs must be re-published: a status change older than ``debounce``
    (changes are batched), CRLs past half their validity, or no CRL yet."""
    now = clock.now()
    due = []
    cas = db.execute(
        select(CertificateAuthority.name).where(
            CertificateAuthority.is_root.is_(False),
            CertificateAuthority.der.is_not(None),
            CertificateAuthority.active.is_(True),
            CertificateAuthority.key_label.not_like("external/%"),
        )
    ).scalars()
    states = {s.issuer: s for s in db.execute(select(RevocationState)).scalars()}
    for name in cas:
        state = states.get(name)
        if state is None or state.next_update is None:
            due.append(name)
            continue
        if state.changes > state.published_changes and (state.changed_at is None or state.changed_at <= _iso(now - debounce)):
            due.append(name)
            continue
        published = datetime.fromisoformat(state.published_at) if state.published_at else now
        expires = datetime.fromisoformat(state.next_update)
        if now >= published + (expires - published) / 2:
            due.append(name)
    return due


# -- the per-process copy served over HTTP ----------------------------------------------------------

CACHE_KEY = "ca.crl"


@dataclass(frozen=True)
class ServedCrl:
    der: bytes
    number: int
    sha256: str
    this_update: str
    next_update: str


@dataclass
class CrlCache:
    by_path: dict[str, ServedCrl]
    numbers: dict[str, int]


def _cache(rt: Runtime) -> CrlCache:
    cache = rt.extensions.get(CACHE_KEY)
    if cache is None:
        cache = rt.extensions.setdefault(CACHE_KEY, CrlCache({}, {}))
    return cache


def poll_published(rt: Runtime) -> None:
    """Load CRLs published (by any process) since the last look."""
    cache = _cache(rt)
    with rt.db.read() as db:
        numbers = dict(db.execute(select(RevocationState.issuer, RevocationState.crl_number)).all())
        for issuer, number in numbers.items():
            if cache.numbers.get(issuer) == number:
                continue
            rows = db.execute(
                select(Crl.scope, Crl.number, Crl.der, Crl.sha256, Crl.this_update, Crl.next_update).where(Crl.issuer == issuer, Crl.number == number)
            ).all()
            for scope, num, der, digest, this_update, next_update in rows:
                cache.by_path[crl_path(issuer, scope)] = ServedCrl(der, num, digest, this_update, next_update)
            cache.numbers[issuer] = number


def served(rt: Runtime, path: str) -> ServedCrl | None:
    """The CRL published at ``path`` (``/crl/<ca>.crl``, ``/crl/<ca>/<k>.crl``), from this
    process's copy (refreshed by the publisher thread, or loaded now on first use)."""
    cache = _cache(rt)
    found = cache.by_path.get(path)
    if found is None:
        poll_published(rt)
        found = cache.by_path.get(path)
    return found
