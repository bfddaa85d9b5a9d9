"""OCSP responder (RFC 6960, RFC 5019 lightweight profile): delegated responder certificates,
pre-signed responses, and the per-process cache the HTTP fast path serves from.

Where a response comes from
---------------------------
- ``ca_ocsp_responses`` holds one pre-signed response per (issuer, serial) — SHA-1 CertID, no
  nonce, as RFC 5019 clients ask — and is the source of truth for every worker process. It is
  written (a) in the same transaction as a status change (``store_status_change``, so a revocation
  and its new response commit together), (b) when a serial is first asked for or pre-signed by the
  publisher, (c) by the refresher before half the response's validity has passed.
- A status change takes the next value of the ``ca_ocsp_sequence`` counter (a locked row, so
  ``seq`` order is commit order). Each worker polls ``seq > last`` every 0.2 s and drops the
  in-process copies of changed serials: a revocation is visible in every process within ~0.3 s.
  Refreshes keep their ``seq`` (the status did not change): a worker re-reads a copy itself once the
  copy is half-way through its validity.
- Responses to requests carrying a nonce are signed fresh (RFC 6960 §4.4.1) and never stored;
  ``unknown`` answers are signed on demand and never stored either (a flood of invented serials
  must not fill the table).

The delegated responder (RFC 6960 §4.2.2.2): key ``ocsp/<ca>`` generated in the HSM, a short-lived
certificate from the ``ocsp`` profile (id-kp-OCSPSigning, id-pkix-ocsp-nocheck) renewed when a
third of its life remains; responses never outlive the certificate that signs them.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp as x509_ocsp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ca.models import ISSUED, ON_HOLD, REVOKED, Certificate, CertificateAuthority, OcspResponder, OcspResponse, OcspSequence
from core import clock, metrics
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.security import Actor

log = logging.getLogger("eauth.ca.ocsp")

RESPONDER_PROFILE = "ocsp"
EXTENSION_KEY = "ca.ocsp"
MAX_NONCE = 32  # RFC 8954 §2.1
STATUS_GOOD = "good"
EPOCH = "1970-01-01T00:00:00+00:00"

_HASHES: dict[str, hashes.HashAlgorithm] = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}

MALFORMED = x509_ocsp.OCSPResponseBuilder.build_unsuccessful(x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST).public_bytes(serialization.Encoding.DER)
UNAUTHORIZED = x509_ocsp.OCSPResponseBuilder.build_unsuccessful(x509_ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER)
INTERNAL_ERROR = x509_ocsp.OCSPResponseBuilder.build_unsuccessful(x509_ocsp.OCSPResponseStatus.INTERNAL_ERROR).public_bytes(serialization.Encoding.DER)
TRY_LATER = x509_ocsp.OCSPResponseBuilder.build_unsuccessful(x509_ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(serialization.Encoding.DER)


def responder_label(ca_name: str) -> str:
    return f"ocsp/{ca_name}"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _validity(rt: Runtime) -> timedelta:
    return timedelta(minutes=rt.settings.ocsp_validity_minutes)


# -- issuers and responders ------------------------------------------------------------------------


def _key_hash_input(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (RFC 6960 §4.1.1 issuerKeyHash)."""
    pub = cert.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(pub, rsa.RSAPublicKey):
        return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise Problem(Kind.INVALID_CONFIG, "ocsp.unsupported_issuer_key", "issuer keys are EC or RSA")


@dataclass(frozen=True)
class IssuerContext:
    name: str
    cert: x509.Certificate
    sha256: str
    hashes: dict[str, tuple[bytes, bytes]]  # hash name -> (issuerNameHash, issuerKeyHash)

    @classmethod
    def of(cls, name: str, der: bytes) -> IssuerContext:
        cert = x509.load_der_x509_certificate(der)
        name_der, key_bits = cert.subject.public_bytes(), _key_hash_input(cert)
        table = {alg: (hashlib.new(alg, name_der).digest(), hashlib.new(alg, key_bits).digest()) for alg in _HASHES}
        return cls(name, cert, hashlib.sha256(der).hexdigest(), table)


@dataclass(frozen=True)
class Responder:
    issuer: str
    serial: str
    cert: x509.Certificate
    key: Any
    not_after: datetime


def load_issuers(db: Session) -> dict[str, IssuerContext]:
    """The issuing CAs this responder answers for (the offline root is not one: its few
    certificates are covered by its CRL)."""
    rows = db.execute(
        select(CertificateAuthority.name, CertificateAuthority.der).where(
            CertificateAuthority.is_root.is_(False), CertificateAuthority.der.is_not(None)
        )
    ).all()
    return {name: IssuerContext.of(name, der) for name, der in rows}


def ensure_responder(rt: Runtime, actor: Actor, ca_name: str, *, force: bool = False) -> Responder:
    """The CA's delegated responder, (re)certified when missing or when a third of its life remains.

    Runs its own transactions (issuance commits mid-way, by design of ``ca.service``), so it is
    never called inside another use case's transaction: ``eauth init`` and the publisher thread
    call it. The key ``ocsp/<ca>`` is generated once in the HSM and kept across renewals."""
    with rt.db.read() as db:
        row = db.get(OcspResponder, ca_name)
        if row is not None and not force and not _renewal_due(row):
            return _responder_from_row(rt, row)
        ca = db.get(CertificateAuthority, ca_name)
        if ca is None or ca.der is None or ca.is_root:
            raise Problem(Kind.NOT_FOUND, "ocsp.unknown_issuer", f"{ca_name!r} is not an issuing CA this responder serves")
    from ca import service
    from hsm.keys import KeySpec

    label = responder_label(ca_name)
    with rt.db.transaction() as db:
        if rt.token.has_key(label):
            key = rt.token.key(label)
        else:
            key = rt.token.generate(KeySpec.parse("ec-p256"), label)
            rt.audit.record(db, actor=actor, action="ca.ocsp.responder_key_generate", target=f"key:{label}", details={"issuer": ca_name})
    with rt.db.transaction() as db:
        issued = service.issue_for_public_key(
            rt,
            db,
            actor,
            profile=RESPONDER_PROFILE,
            public_key=key.public_key(),  # type: ignore[union-attr]
            common_name=f"eAuth OCSP Responder {ca_name}"[:64],
            ca_name=ca_name,
            key_label=label,
        )
    cert = x509.load_der_x509_certificate(issued.der)
    values = {
        "key_label": label,
        "serial": issued.serial,
        "der": issued.der,
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
        "updated_at": clock.now().astimezone(UTC).isoformat(timespec="microseconds"),
    }
    with rt.db.transaction() as db:
        row = db.execute(select(OcspResponder).where(OcspResponder.issuer == ca_name).with_for_update()).scalar_one_or_none()
        if row is None:
            row = OcspResponder(issuer=ca_name, **values)
            db.add(row)
        elif row.not_after < values["not_after"]:  # a concurrent renewal may have stored a newer one
            for k, v in values.items():
                setattr(row, k, v)
        rt.audit.record(
            db,
            actor=actor,
            action="ca.ocsp.responder_certify",
            target=f"certificate:{issued.serial}",
            details={"issuer": ca_name, "key_label": label, "not_after": values["not_after"]},
        )
        db.flush()
        return _responder_from_row(rt, row)


def _renewal_due(row: OcspResponder) -> bool:
    not_before, not_after = _parse(row.not_before), _parse(row.not_after)
    return clock.now() >= not_after - (not_after - not_before) / 3


def _responder_from_row(rt: Runtime, row: OcspResponder) -> Responder:
    return Responder(row.issuer, row.serial, x509.load_der_x509_certificate(row.der), rt.token.key(row.key_label), _parse(row.not_after))


# -- building responses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CertStatus:
    status: str  # good | revoked | on_hold | unknown
    revoked_at: str | None = None
    reason: str | None = None


UNKNOWN = CertStatus("unknown")


def status_of(db: Session, issuer: str, serial: int) -> CertStatus:
    row = db.execute(
        select(Certificate.status, Certificate.revoked_at, Certificate.revocation_reason).where(
            Certificate.serial == format(serial, "x"), Certificate.issuer == issuer
        )
    ).first()
    return _status_from(row)


def _status_from(row: Any) -> CertStatus:
    if row is None:
        return UNKNOWN
    status, revoked_at, reason = row
    if status == ISSUED:
        return CertStatus(STATUS_GOOD)
    if status in (REVOKED, ON_HOLD):
        return CertStatus(status, revoked_at, reason)
    return UNKNOWN  # pending / failed: never a certificate this CA issued


def sign_response(
    rt: Runtime,
    issuer: IssuerContext,
    responder: Responder,
    serial: int,
    status: CertStatus,
    *,
    algorithm: str = "sha1",
    nonce: bytes | None = None,
) -> tuple[bytes, datetime, datetime]:
    """A signed BasicOCSPResponse for one CertID: (DER, thisUpdate, nextUpdate)."""
    this_update = clock.now().astimezone(UTC).replace(microsecond=0)
    next_update = min(this_update + _validity(rt), responder.not_after)
    if status.status == STATUS_GOOD:
        cert_status, revoked_at, reason = x509_ocsp.OCSPCertStatus.GOOD, None, None
    elif status.status in (REVOKED, ON_HOLD):
        cert_status = x509_ocsp.OCSPCertStatus.REVOKED
        revoked_at = _parse(status.revoked_at) if status.revoked_at else this_update
        name = "certificateHold" if status.status == ON_HOLD else status.reason
        # Like the CRL, "unspecified" is expressed by leaving the reason out.
        reason = x509.ReasonFlags(name) if name and name != "unspecified" else None
    else:
        cert_status, revoked_at, reason = x509_ocsp.OCSPCertStatus.UNKNOWN, None, None
    name_hash, key_hash = issuer.hashes[algorithm]
    builder = (
        x509_ocsp.OCSPResponseBuilder()
        .add_response_by_hash(name_hash, key_hash, serial, _HASHES[algorithm], cert_status, this_update, next_update, revoked_at, reason)
        .responder_id(x509_ocsp.OCSPResponderEncoding.HASH, responder.cert)
        .certificates([responder.cert])
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    sig_hash = hashes.SHA384() if isinstance(responder.key, ec.EllipticCurvePrivateKey) and responder.key.curve.key_size >= 384 else hashes.SHA256()
    response = builder.sign(responder.key, sig_hash)
    return response.public_bytes(serialization.Encoding.DER), this_update, next_update


# -- storage -----------------------------------------------------------------------------------------


def _next_seq(db: Session) -> int:
    db.execute(update(OcspSequence).where(OcspSequence.id == 1).values(value=OcspSequence.value + 1))
    return db.execute(select(OcspSequence.value).where(OcspSequence.id == 1)).scalar_one()


def _insert(db: Session, values: dict[str, Any], *, overwrite: bool) -> int:
    """INSERT, or on (issuer, serial) conflict: overwrite (status changes) or keep the existing row
    (first signatures racing a status change must never win)."""
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(OcspResponse).values(**values)
    if overwrite:
        stmt = stmt.on_conflict_do_update(index_elements=["issuer", "serial"], set_={k: v for k, v in values.items() if k not in ("issuer", "serial")})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["issuer", "serial"])
    # Count RETURNING rows: SQLAlchemy 2.1 reports rowcount -1 for INSERT on PostgreSQL, which
    # would hide a conflict from the callers that test for 0.
    return len(db.execute(stmt.returning(OcspResponse.serial)).all())


class NoResponder(Problem):
    def __init__(self, issuer: str) -> None:
        super().__init__(Kind.UNAVAILABLE, "ocsp.no_responder", f"no valid OCSP responder certificate for {issuer!r} yet")
        self.issuer = issuer


def _current_responder(rt: Runtime, db: Session, issuer: str) -> Responder:
    row = db.get(OcspResponder, issuer)
    if row is None or _parse(row.not_after) <= clock.now():
        raise NoResponder(issuer)
    return _responder_from_row(rt, row)


def store_status_change(rt: Runtime, db: Session, cert: Certificate) -> None:
    """Re-sign ``cert``'s response after a status change, in the change's transaction."""
    issuer_row = db.get(CertificateAuthority, cert.issuer)
    if issuer_row is None or issuer_row.der is None or issuer_row.is_root:
        return  # root-issued (CA) certificates: the root CRL is their status service
    issuer = IssuerContext.of(cert.issuer, issuer_row.der)
    seq = _next_seq(db)
    try:
        responder = _current_responder(rt, db, cert.issuer)
    except NoResponder:
        # No responder yet (it is certified at init and by the publisher): drop the stale answer;
        # the next request signs one once the responder exists.
        # The placeholder carries the new seq (so every worker forgets its copy) and is never fresh.
        _insert(
            db,
            {"issuer": cert.issuer, "serial": cert.serial, "status": cert.status, "responder": "-", "this_update": EPOCH, "next_update": EPOCH, "seq": seq, "der": b""},
            overwrite=True,
        )
        forget(rt, cert.issuer, int(cert.serial, 16))
        return
    status = _status_from((cert.status, cert.revoked_at, cert.revocation_reason))
    der, this_update, next_update = sign_response(rt, issuer, responder, int(cert.serial, 16), status)
    _insert(
        db,
        {
            "issuer": cert.issuer,
            "serial": cert.serial,
            "status": status.status,
            "responder": responder.serial,
            "this_update": _iso(this_update),
            "next_update": _iso(next_update),
            "seq": seq,
            "der": der,
        },
        overwrite=True,
    )
    forget(rt, cert.issuer, int(cert.serial, 16))


def _fresh(rt: Runtime, row: OcspResponse, responder_serial: str | None, *, margin: float = 0.5) -> bool:
    if responder_serial is not None and row.responder != responder_serial:
        return False
    this_update, next_update = _parse(row.this_update), _parse(row.next_update)
    return clock.now() < this_update + (next_update - this_update) * margin


def stored_or_signed(rt: Runtime, db: Session, issuer: IssuerContext, serial: int) -> tuple[bytes, str, str, bool]:
    """The SHA-1 CertID response for ``serial``: the stored one while fresh, else signed now and
    stored (inserted if absent; replaced only if nobody changed it meanwhile). Returns (DER,
    thisUpdate, nextUpdate, cacheable) — ``unknown`` answers are not cacheable."""
    serial_hex = format(serial, "x")
    responder_row = db.get(OcspResponder, issuer.name)
    row = db.get(OcspResponse, (issuer.name, serial_hex))
    if row is not None and _fresh(rt, row, responder_row.serial if responder_row else None):
        return row.der, row.this_update, row.next_update, True
    status = status_of(db, issuer.name, serial)
    responder = _current_responder(rt, db, issuer.name)
    der, this_update, next_update = sign_response(rt, issuer, responder, serial, status)
    if status.status == "unknown":
        return der, _iso(this_update), _iso(next_update), False
    values = {
        "issuer": issuer.name,
        "serial": serial_hex,
        "status": status.status,
        "responder": responder.serial,
        "this_update": _iso(this_update),
        "next_update": _iso(next_update),
        "der": der,
    }
    if row is None:
        if _insert(db, values | {"seq": 0}, overwrite=False) == 0:
            db.expire_all()
            row = db.get(OcspResponse, (issuer.name, serial_hex))  # someone else's (maybe a revocation)
            if row is not None:
                return row.der, row.this_update, row.next_update, True
    else:
        changed = db.execute(
            update(OcspResponse)
            .where(OcspResponse.issuer == issuer.name, OcspResponse.serial == serial_hex, OcspResponse.seq == row.seq)
            .values(**{k: v for k, v in values.items() if k not in ("issuer", "serial")})
        ).rowcount
        if not changed:
            db.expire_all()
            row = db.get(OcspResponse, (issuer.name, serial_hex))
            if row is not None:
                return row.der, row.this_update, row.next_update, True
    return der, _iso(this_update), _iso(next_update), True


def response_for(rt: Runtime, db: Session, serial: str) -> bytes:
    """The current OCSP response (DER) for one of our certificates, for LTV embedding."""
    from ca.revocation import normalise_serial

    serial_hex = normalise_serial(serial)
    issuer_name = db.execute(select(Certificate.issuer).where(Certificate.serial == serial_hex)).scalar_one_or_none()
    if issuer_name is None:
        raise Problem(Kind.NOT_FOUND, "certificate.not_found", f"no certificate with serial {serial}")
    issuer_row = db.get(CertificateAuthority, issuer_name)
    if issuer_row is None or issuer_row.der is None or issuer_row.is_root:
        raise Problem(Kind.NOT_FOUND, "ocsp.not_served", f"certificate {serial_hex} is covered by the root CRL, not OCSP")
    issuer = IssuerContext.of(issuer_name, issuer_row.der)
    row = db.get(OcspResponse, (issuer_name, serial_hex))
    responder_row = db.get(OcspResponder, issuer_name)
    if row is not None and _fresh(rt, row, responder_row.serial if responder_row else None):
        return row.der
    der, _, _ = sign_response(rt, issuer, _current_responder(rt, db, issuer_name), int(serial_hex, 16), status_of(db, issuer_name, int(serial_hex, 16)))
    return der


SWEPT_KEY = "ca.ocsp.swept"  # issuer -> (responder serial all its responses carry, when seen)
RESWEEP_SECONDS = 600.0


def refresh_stale(rt: Runtime, *, limit: int = 500) -> int:
    """Re-sign stored responses past 40 % of their validity (before workers look for new copies
    at 50 %) or signed by a superseded responder. Conditional on ``seq``, so a concurrent status
    change always wins. Returns how many were re-signed."""
    validity = _validity(rt)
    threshold = _iso(clock.now() - validity * 0.4)
    with rt.db.read() as db:
        responders = dict(db.execute(select(OcspResponder.issuer, OcspResponder.serial)).all())
        stale = db.execute(
            select(OcspResponse.issuer, OcspResponse.serial, OcspResponse.seq)
            .where(OcspResponse.this_update < threshold)
            .limit(limit)
        ).all()
        swept = rt.extensions.setdefault(SWEPT_KEY, {})
        if len(stale) < limit:
            for issuer, responder_serial in responders.items():
                # A responder's responses all carry it once swept: look again only when it changes
                # or every RESWEEP_SECONDS (this query reads every response of the issuer).
                if swept.get(issuer, ("", 0.0))[0] == responder_serial and time.monotonic() - swept[issuer][1] < RESWEEP_SECONDS:
                    continue
                room = limit - len(stale)
                found = db.execute(
                    select(OcspResponse.issuer, OcspResponse.serial, OcspResponse.seq)
                    .where(OcspResponse.issuer == issuer, OcspResponse.responder != responder_serial)
                    .limit(room)
                ).all()
                stale += found
                if len(found) < room:  # none left once these are re-signed
                    swept[issuer] = (responder_serial, time.monotonic())
    if not stale:
        return 0
    done = 0
    with rt.db.read() as db:
        issuers = load_issuers(db)
    responders_now = {name: ensure_responder(rt, Actor.system("ocsp"), name) for name in {i for i, _, _ in stale} if name in issuers}
    with rt.db.transaction() as db:
        for issuer_name, serial_hex, seq in stale:
            issuer = issuers.get(issuer_name)
            if issuer is None:
                continue
            responder = responders_now[issuer_name]
            status = status_of(db, issuer_name, int(serial_hex, 16))
            der, this_update, next_update = sign_response(rt, issuer, responder, int(serial_hex, 16), status)
            done += db.execute(
                update(OcspResponse)
                .where(OcspResponse.issuer == issuer_name, OcspResponse.serial == serial_hex, OcspResponse.seq == seq)
                .values(status=status.status, responder=responder.serial, this_update=_iso(this_update), next_update=_iso(next_update), der=der)
            ).rowcount or 0
    return done


def presign_missing(rt: Runtime, *, since: str = "", limit: int = 1000) -> tuple[int, str]:
    """Sign responses for issued certificates that have none yet (created at or after ``since``).
    Returns (how many, the newest ``created_at`` seen) so the caller can advance its watermark."""
    with rt.db.read() as db:
        issuers = load_issuers(db)
        rows = db.execute(
            select(Certificate.issuer, Certificate.serial, Certificate.created_at, Certificate.status, Certificate.revoked_at, Certificate.revocation_reason)
            .outerjoin(OcspResponse, (OcspResponse.issuer == Certificate.issuer) & (OcspResponse.serial == Certificate.serial))
            .where(OcspResponse.serial.is_(None), Certificate.status.in_((ISSUED, REVOKED, ON_HOLD)), Certificate.created_at >= since)
            .order_by(Certificate.created_at)
            .limit(limit)
        ).all()
    rows = [r for r in rows if r.issuer in issuers]
    newest = max((r.created_at for r in rows), default=since)
    if not rows:
        return 0, newest
    signed = []
    responders = {name: ensure_responder(rt, Actor.system("ocsp"), name) for name in {r.issuer for r in rows}}
    for r in rows:
        status = _status_from((r.status, r.revoked_at, r.revocation_reason))
        responder = responders[r.issuer]
        der, this_update, next_update = sign_response(rt, issuers[r.issuer], responder, int(r.serial, 16), status)
        signed.append(
            {
                "issuer": r.issuer,
                "serial": r.serial,
                "status": status.status,
                "responder": responder.serial,
                "this_update": _iso(this_update),
                "next_update": _iso(next_update),
                "seq": 0,
                "der": der,
            }
        )
    # Signed outside the write transaction; inserted only where still absent (a status change in
    # between wrote its own row, which stays). Multi-row INSERTs: one round trip per chunk, not
    # per response (bench/bench_ocsp.py pre-signs 100,000).
    count = 0
    with rt.db.transaction() as db:
        for start in range(0, len(signed), _INSERT_CHUNK):
            count += _insert_absent(db, signed[start : start + _INSERT_CHUNK])
    return count, newest


_INSERT_CHUNK = 500  # rows per INSERT: 8 columns each, well under SQLite's and PostgreSQL's parameter limits


def _insert_absent(db: Session, rows: list[dict[str, Any]]) -> int:
    """Insert the rows whose (issuer, serial) is not stored yet; returns how many were inserted."""
    if not rows:
        return 0
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = OcspResponse.__table__
    stmt = insert(table).on_conflict_do_nothing(index_elements=["issuer", "serial"]).returning(table.c.serial)
    # executemany with RETURNING: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues")
    # from one cached compiled statement.
    return len(db.connection().execute(stmt, rows).all())


# -- the per-process responder -------------------------------------------------------------------


@dataclass(slots=True)
class Cached:
    der: bytes
    etag: bytes
    last_modified: bytes
    expires: bytes
    next_update: float  # epoch seconds
    stale_at: float  # after this, look in the database for a newer copy


@functools.lru_cache(maxsize=4096)  # responses signed in the same second share their dates
def _http_date(iso: str) -> bytes:
    return email.utils.formatdate(_parse(iso).timestamp(), usegmt=True).encode()


def cached_entry(der: bytes, this_update: str, next_update: str) -> Cached:
    tu, nu = _parse(this_update).timestamp(), _parse(next_update).timestamp()
    return Cached(der, b'"' + hashlib.sha1(der).hexdigest().encode() + b'"', _http_date(this_update), _http_date(next_update), nu, tu + (nu - tu) * 0.5)


@dataclass
class ResponderState:
    """Everything a worker process needs to answer without the database in the common case."""

    issuers: dict[str, IssuerContext] = field(default_factory=dict)
    by_hash: dict[tuple[str, bytes, bytes], str] = field(default_factory=dict)
    cache: dict[tuple[str, int, str], Cached] = field(default_factory=dict)
    generation: int = 0
    last_seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    max_entries: int = 1_000_000  # EAUTH_OCSP_CACHE_ENTRIES; ≈ 1 KiB each
    answered: int = 0  # requests parsed (running total; core.traffic files the daily growth)
    # unsuccessful responses by responseStatus (RFC 6960 §4.2.1), running totals; with ``answered``
    # they feed eauth_ocsp_responses_total (core.metrics.watch): no counter call on the OCSP path
    unsuccessful: dict[str, int] = field(default_factory=lambda: {"malformedRequest": 0, "unauthorized": 0, "tryLater": 0, "internalError": 0})

    def response_totals(self) -> dict[str, int]:
        failed = self.unsuccessful
        return {"successful": self.answered - sum(failed.values()), **failed}

    def set_issuers(self, issuers: dict[str, IssuerContext]) -> None:
        by_hash = {}
        for ctx in issuers.values():
            for alg, (nh, kh) in ctx.hashes.items():
                by_hash[(alg, nh, kh)] = ctx.name
        self.issuers, self.by_hash = issuers, by_hash

    def forget(self, issuer: str, serial: int) -> None:
        self.generation += 1
        for alg in _HASHES:
            self.cache.pop((issuer, serial, alg), None)

    def put(self, key: tuple[str, int, str], entry: Cached, generation: int) -> None:
        """Keep ``entry`` unless a change was seen since the caller started reading (then the copy
        it read may predate that change)."""
        if generation != self.generation:
            return
        if len(self.cache) >= self.max_entries and key not in self.cache:
            self._evict()
        self.cache[key] = entry

    def _evict(self) -> None:
        """Drop the oldest tenth of the copies (dicts keep insertion order: first in, first out),
        so a full cache sheds a slice at a time instead of every worker missing on every serial at
        once; the database holds every response, so an evicted serial costs one read next time."""
        for key in list(itertools.islice(self.cache, max(1, self.max_entries // 10))):
            del self.cache[key]


def state(rt: Runtime) -> ResponderState:
    st = rt.extensions.get(EXTENSION_KEY)
    if st is None:
        st = ResponderState(max_entries=rt.settings.ocsp_cache_entries)
        with rt.db.read() as db:
            st.set_issuers(load_issuers(db))
            st.last_seq = db.execute(select(OcspSequence.value).where(OcspSequence.id == 1)).scalar_one_or_none() or 0
        st = rt.extensions.setdefault(EXTENSION_KEY, st)
        # one reader per responder state: a process holding several runtimes (the test suite) counts
        # every one of them; watching under one shared name let the newest hide the others
        metrics.watch(f"ocsp:{id(st)}", metrics.OCSP_RESPONSES, "status", st.response_totals)
    return st


def forget(rt: Runtime, issuer: str, serial: int) -> None:
    st = rt.extensions.get(EXTENSION_KEY)
    if st is not None:
        st.forget(issuer, serial)


def poll_changes(rt: Runtime) -> int:
    """Drop in-process copies of responses changed since the last poll (any process's changes)."""
    st = state(rt)
    with rt.db.read() as db:
        rows = db.execute(
            select(OcspResponse.issuer, OcspResponse.serial, OcspResponse.seq).where(OcspResponse.seq > st.last_seq).order_by(OcspResponse.seq)
        ).all()
    for issuer, serial_hex, seq in rows:
        st.forget(issuer, int(serial_hex, 16))
        st.last_seq = max(st.last_seq, seq)
    return len(rows)


WARM_ENTRIES = 200_000  # responses a worker loads at start-up at most (≈ 1 KiB each in memory)


def warm_cache(rt: Runtime, *, limit: int = WARM_ENTRIES, batch: int = 5_000) -> int:
    """Load fresh pre-signed responses into this process's cache, so a worker answers known
    serials without a database read from its first request on (bench/bench_ocsp.py: random
    serials). Runs in the publisher thread; a change seen meanwhile (``generation``) makes
    :meth:`ResponderState.put` skip the copy read before it. Returns how many were loaded."""
    st = state(rt)
    loaded = 0
    with rt.db.read() as db:
        responders = dict(db.execute(select(OcspResponder.issuer, OcspResponder.serial)).all())
        # Fresh = within the first half of the validity, as _fresh() and cached() decide.
        since = _iso(clock.now() - _validity(rt) * 0.5)
        generation = st.generation
        stmt = (
            select(OcspResponse.issuer, OcspResponse.serial, OcspResponse.responder, OcspResponse.this_update, OcspResponse.next_update, OcspResponse.der)
            .where(OcspResponse.this_update > since)
            .limit(limit)
            .execution_options(yield_per=batch)
        )
        now = time.time()
        for issuer, serial_hex, responder, this_update, next_update, der in db.execute(stmt):
            if issuer not in st.issuers or responders.get(issuer) != responder or not der:
                continue
            entry = cached_entry(der, this_update, next_update)
            if entry.stale_at <= now:
                continue
            if len(st.cache) >= st.max_entries:
                break  # warming never evicts: what is cached was asked for
            st.put((issuer, int(serial_hex, 16), "sha1"), entry, generation)
            loaded += 1
    return loaded


def reload_issuers(rt: Runtime) -> None:
    st = state(rt)
    with rt.db.read() as db:
        issuers = load_issuers(db)
    if {k: v.sha256 for k, v in issuers.items()} != {k: v.sha256 for k, v in st.issuers.items()}:
        st.set_issuers(issuers)


# -- answering a request -----------------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: made for every request, and a frozen dataclass is slow to make
class Parsed:
    issuer: str | None  # None: not an issuer we serve
    serial: int
    algorithm: str
    nonce: bytes | None


# RFC 5019 §2.1's request, the form nearly every client sends: one SHA-1 CertID, no version,
# requestor name, extensions or signature. Every length fits one octet (a serial has at most 20 octets).
_SHA1_IDS = (bytes.fromhex("300906052b0e03021a0500"), bytes.fromhex("300706052b0e03021a"))  # parameters NULL / absent


def quick_certid(data: bytes) -> tuple[bytes, bytes, int] | None:
    """(issuerNameHash, issuerKeyHash, serial) of a request in exactly that form, read straight off
    the DER (a few slices, no parser objects); ``None`` for anything else, which the full parser
    then reads. Accepts only what the full parser accepts and reads the same (tests/ca/test_ocsp_store.py)."""
    n = len(data)
    if not 66 <= n <= 129:
        return None
    # OCSPRequest ⊃ TBSRequest ⊃ requestList ⊃ Request ⊃ CertID, each the only element of the one before.
    if data[0] != 0x30 or data[1] != n - 2 or data[2] != 0x30 or data[3] != n - 4 or data[4] != 0x30 or data[5] != n - 6:
        return None
    if data[6] != 0x30 or data[7] != n - 8 or data[8] != 0x30 or data[9] != n - 10:
        return None
    if data.startswith(_SHA1_IDS[0], 10):
        p = 21
    elif data.startswith(_SHA1_IDS[1], 10):
        p = 19
    else:
        return None
    if p + 47 > n:
        return None
    if data[p] != 0x04 or data[p + 1] != 20 or data[p + 22] != 0x04 or data[p + 23] != 20 or data[p + 44] != 0x02:
        return None
    length = data[p + 45]
    if not 1 <= length <= 21 or p + 46 + length != n:
        return None
    first = data[p + 46]
    if first & 0x80 or (first == 0 and (length == 1 or not data[p + 47] & 0x80)):
        return None  # negative, zero or not minimally encoded: the full parser's verdict
    return data[p + 2 : p + 22], data[p + 24 : p + 44], int.from_bytes(data[p + 46 :], "big")


def parse_request(st: ResponderState, data: bytes) -> Parsed | bytes:
    """The CertID and nonce of an OCSPRequest, or the DER of the unsuccessful response to send."""
    st.answered += 1
    quick = quick_certid(data)
    if quick is not None:
        issuer = st.by_hash.get(("sha1", quick[0], quick[1]))
        if issuer is None:
            st.unsuccessful["unauthorized"] += 1
        return Parsed(issuer, quick[2], "sha1", None)
    try:
        req = x509_ocsp.load_der_ocsp_request(data)
        algorithm = req.hash_algorithm.name
        name_hash, key_hash, serial = req.issuer_name_hash, req.issuer_key_hash, req.serial_number
        nonce = None
        for ext in req.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                nonce = ext.value.nonce
    except Exception:  # noqa: BLE001 - any parse failure is the client's malformedRequest, never a 500
        st.unsuccessful["malformedRequest"] += 1
        return MALFORMED
    if nonce is not None and not 1 <= len(nonce) <= MAX_NONCE:
        st.unsuccessful["malformedRequest"] += 1
        return MALFORMED  # RFC 8954 §2.1
    if algorithm not in _HASHES or serial <= 0:
        st.unsuccessful["malformedRequest" if serial <= 0 else "unauthorized"] += 1
        return MALFORMED if serial <= 0 else UNAUTHORIZED
    issuer = st.by_hash.get((algorithm, name_hash, key_hash))
    if issuer is None:
        st.unsuccessful["unauthorized"] += 1  # answered UNAUTHORIZED by whoever holds the Parsed
    return Parsed(issuer, serial, algorithm, nonce)


def answer(rt: Runtime, parsed: Parsed) -> tuple[bytes, Cached | None]:
    """The response to a parsed request, from the database or signed now (blocking: call from a
    worker thread). Returns (DER, cache entry or None when the answer must not be cached)."""
    st = state(rt)
    if parsed.issuer is None:
        return UNAUTHORIZED, None  # RFC 6960 §2.3 (issuers created since start-up: see the publisher)
    issuer = st.issuers[parsed.issuer]
    generation = st.generation
    try:
        if parsed.nonce is not None or parsed.algorithm != "sha1":
            with rt.db.read() as db:
                status = status_of(db, issuer.name, parsed.serial)
                responder_row = db.get(OcspResponder, issuer.name)
            if responder_row is None or _parse(responder_row.not_after) <= clock.now():
                responder = ensure_responder(rt, Actor.system("ocsp"), issuer.name)
            else:
                responder = _responder_from_row(rt, responder_row)
            der, this_update, next_update = sign_response(rt, issuer, responder, parsed.serial, status, algorithm=parsed.algorithm, nonce=parsed.nonce)
            if parsed.nonce is not None or status.status == "unknown":
                return der, None
            entry = cached_entry(der, _iso(this_update), _iso(next_update))
            st.put((issuer.name, parsed.serial, parsed.algorithm), entry, generation)
            return der, entry
        with rt.db.read() as db:
            row = db.get(OcspResponse, (issuer.name, format(parsed.serial, "x")))
            responder_row = db.get(OcspResponder, issuer.name)
            if row is not None and _fresh(rt, row, responder_row.serial if responder_row else None):
                entry = cached_entry(row.der, row.this_update, row.next_update)
                st.put((issuer.name, parsed.serial, "sha1"), entry, generation)
                return row.der, entry
        try:
            with rt.db.transaction() as db:
                der, this_update_s, next_update_s, cacheable = stored_or_signed(rt, db, issuer, parsed.serial)
        except NoResponder:
            ensure_responder(rt, Actor.system("ocsp"), issuer.name)
            with rt.db.transaction() as db:
                der, this_update_s, next_update_s, cacheable = stored_or_signed(rt, db, issuer, parsed.serial)
        if not cacheable:
            return der, None
        entry = cached_entry(der, this_update_s, next_update_s)
        st.put((issuer.name, parsed.serial, "sha1"), entry, generation)
        return der, entry
    except Problem as exc:
        log.warning("ocsp: %s (%s)", exc.code, exc.detail)
        st.unsuccessful["tryLater"] += 1
        return TRY_LATER, None
    except Exception:  # noqa: BLE001 - an OCSP client gets internalError, never an HTML 500
        log.exception("ocsp: unexpected failure")
        st.unsuccessful["internalError"] += 1
        return INTERNAL_ERROR, None


def cached(st: ResponderState, parsed: Parsed) -> Cached | None:
    """The in-process copy, if one exists and is not yet due for a newer one (no I/O)."""
    if parsed.nonce is not None or parsed.issuer is None:
        return None
    entry = st.cache.get((parsed.issuer, parsed.serial, parsed.algorithm))
    if entry is None or time.time() >= entry.stale_at:
        return None
    return entry
