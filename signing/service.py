"""Use cases of the signing package: seals, sealing (PDF, records), verification, the TSA unit.

Per-process state (the TSA unit with its serial clock, one reused timestamper, each seal's signer
and stamp style, the verifier's trust setup and revocation data) lives in
``rt.extensions["signing"]``: built on first use, refreshed when stale.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

import identity.service as identity
from ca import crl as ca_crl
from ca import hierarchy as ca_hierarchy
from ca import ocsp as ca_ocsp
from ca import service as ca_service
from core import clock, traffic
from core.errors import Kind, Problem, invalid
from core.runtime import Runtime
from core.security import Actor
from hsm.keys import KeySpec
from hsm.jws import jws_algorithm_for, sign_jws
from signing import appearance, pades, records
from signing.models import ACTIVE, DISABLED, Seal, SealClient, SealedDocument, TsaInstance, TsaUnit
from signing.report import Report, Revocation
from signing.rfc3161 import TimestampAuthority
from signing.signer import HsmSigner, InProcessTimeStamper
from signing.verify import TrustSetup, verify_pdf

TSA_UNIT = "1"
TSA_LABEL = "tsa/1"
REVINFO_TTL = 60.0  # seconds: CRLs / OCSP responses reused for LTV embedding and verification
TRUST_TTL = 300.0


def _now() -> str:
    return clock.now().isoformat()


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# -- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealView:
    id: str
    name: str
    department_id: str
    department_name: str
    department_uscc: str
    key_label: str
    cert_serial: str
    status: str
    clients: tuple[str, ...]
    created_at: str
    cert_der: bytes = field(repr=False, default=b"")

    @property
    def cert_pem(self) -> str:
        return x509.load_der_x509_certificate(self.cert_der).public_bytes(serialization.Encoding.PEM).decode()

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "cert_der"} | {"clients": list(self.clients)}


@dataclass(frozen=True)
class SealedDocumentView:
    id: str
    seal_id: str
    kind: str
    level: str
    sha256: str
    size: int
    created_at: str
    seal_name: str = ""
    department_name: str = ""


@dataclass(frozen=True)
class SealedPdf:
    document: SealedDocumentView
    pdf: bytes = field(repr=False)
    verify_url: str = ""


# -- per-process state -------------------------------------------------------------------------------


@dataclass
class _SealMaterial:
    serial: str
    signer: HsmSigner
    style: Any
    department: str
    bytes_reserved: int
    jws: records.JwsSealer
    image_png: bytes = b""


@dataclass
class _State:
    lock: threading.RLock = field(default_factory=threading.RLock)
    tsa: TimestampAuthority | None = None
    timestamper: InProcessTimeStamper | None = None
    seals: dict[str, _SealMaterial] = field(default_factory=dict)
    chain: tuple[asn1_x509.Certificate, ...] | None = None  # issuing CA first, root last
    trust: tuple[float, TrustSetup] | None = None
    revinfo: tuple[float, tuple[asn1_crl.CertificateList, ...], dict[str, asn1_ocsp.OCSPResponse]] | None = None


def _state(rt: Runtime) -> _State:
    state = rt.extensions.get("signing")
    if state is None:
        state = rt.extensions.setdefault("signing", _State())
    return state


def _shared(value: Any) -> Any:
    """``value`` parsed through before it is shared between requests.

    asn1crypto parses lazily and not thread-safely: two threads reading the same unparsed structure
    can see a child list half built (``KeyError: 'No field numbered 2 is present in this
    asn1crypto.x509.Extension'`` inside pyhanko_certvalidator's registry). That was the soak's one
    failed verification (TOTAL-FAILED, ``signature_unreadable:KeyError``): the first concurrent
    verifications in a fresh worker, all reading the one cached CA chain. Certificates and OCSP
    responses are small: ``.native`` parses every part. A CRL may hold a million entries, whose
    native form would double its memory: its structure is parsed recursively instead (every
    SEQUENCE / SEQUENCE OF child built), its issuer and extensions through ``.native``.
    """
    if isinstance(value, asn1_crl.CertificateList):
        value._parse_children(recurse=True)  # stops at CHOICEs: the issuer name is one
        value["tbs_cert_list"]["issuer"].native
        value["tbs_cert_list"]["crl_extensions"].native
    else:
        value.native
    return value


def _chain(rt: Runtime, db: Session) -> tuple[asn1_x509.Certificate, ...]:
    state = _state(rt)
    if state.chain is None:
        state.chain = tuple(_shared(asn1_x509.Certificate.load(_der(c))) for c in ca_service.ca_chain(rt, db))
    return state.chain


# -- TSA -----------------------------------------------------------------------------------------------


def ensure_tsa(rt: Runtime, actor: Actor) -> list[str]:
    """Create the timestamp unit once: key ``tsa/1`` in the HSM and its ``tsa`` certificate."""
    with rt.db.read() as db:
        unit = db.get(TsaUnit, TSA_UNIT)
        if unit is not None:
            return [f"TSA unit {unit.name} (exists): key {unit.key_label}, certificate {unit.cert_serial}"]
    key = rt.token.key(TSA_LABEL) if rt.token.has_key(TSA_LABEL) else rt.token.generate(KeySpec.parse(rt.settings.ca_key_spec), TSA_LABEL)
    with rt.db.transaction() as db:
        issued = ca_service.issue_for_public_key(
            rt, db, actor, profile="tsa", public_key=key.public_key(), common_name=f"eAuth Time-Stamping Unit {TSA_UNIT}", key_label=TSA_LABEL
        )
        db.add(TsaUnit(name=TSA_UNIT, key_label=TSA_LABEL, cert_serial=issued.serial, cert_der=issued.der, active=True, created_at=_now()))
        rt.audit.record(db, actor=actor, action="signing.tsa.create", target=f"tsa:{TSA_UNIT}", details={"key": TSA_LABEL, "serial": issued.serial, "policy": rt.settings.tsa_policy_oid})
    return [f"TSA unit {TSA_UNIT} (created): key {TSA_LABEL}, certificate {issued.serial}, policy {rt.settings.tsa_policy_oid}"]


def tsa_authority(rt: Runtime, db: Session | None = None) -> TimestampAuthority:
    """This process's timestamp authority (registers a serial-number instance on first use).

    The instance row is written in a transaction of its own — or, when the caller passes a session
    that already holds a transaction (SQLite allows one writer: a second transaction would wait on
    the caller's lock until it times out), inside the caller's; if that transaction rolls back, the
    authority is forgotten so its unregistered instance number is never used for a kept token.
    Web workers, the CLI and the benchmark build it up front (``web.setup``), outside any transaction.
    """
    state = _state(rt)
    if state.tsa is not None:
        return state.tsa
    with state.lock:
        if state.tsa is not None:
            return state.tsa
        if db is not None and db.in_transaction():
            authority = _register_tsa(rt, db)

            def _forget(_session: Session, _previous: Any = None) -> None:
                if state.tsa is authority:
                    state.tsa = None
                    state.timestamper = None

            event.listen(db, "after_soft_rollback", _forget, once=True)
        else:
            with rt.db.transaction() as own:
                authority = _register_tsa(rt, own)
        state.tsa = authority
        state.timestamper = InProcessTimeStamper(authority.respond)
        return authority


def _register_tsa(rt: Runtime, db: Session) -> TimestampAuthority:
    unit = db.get(TsaUnit, TSA_UNIT)
    if unit is None or not unit.active:
        raise Problem(Kind.UNAVAILABLE, "tsa.not_initialised", "the timestamp unit does not exist; run `eauth init`")
    chain = [c.dump() for c in _chain(rt, db)[:-1]]  # issuing CA(s); the root is the client's anchor
    instance = TsaInstance(host=socket.gethostname()[:200], pid=os.getpid(), started_at=_now())
    db.add(instance)
    db.flush()
    rt.audit.record(db, actor=Actor.system("tsa"), action="signing.tsa.instance", target=f"tsa:{TSA_UNIT}", details={"instance": instance.id, "pid": os.getpid()})
    return TimestampAuthority(
        key=rt.token.key(unit.key_label),  # type: ignore[arg-type]
        cert_der=unit.cert_der,
        chain_der=chain,
        policy=rt.settings.tsa_policy_oid,
        accuracy_ms=rt.settings.tsa_accuracy_ms,
        instance=instance.id % (1 << 20),
    )


def timestamp_response(rt: Runtime, query: bytes) -> bytes:
    """``POST /tsa``: a TimeStampResp for any bytes (rejections included, never an exception for
    bad input)."""
    return tsa_authority(rt).respond(query)


def timestamp_responses(rt: Runtime, queries: list[bytes]) -> list[bytes]:
    """:func:`timestamp_response` for a batch (``POST /tsa``'s timestamp thread)."""
    return tsa_authority(rt).respond_many(queries)


def _timestamper(rt: Runtime, db: Session | None = None) -> InProcessTimeStamper:
    tsa_authority(rt, db)
    state = _state(rt)
    assert state.timestamper is not None
    return state.timestamper


# -- revocation data (LTV, verification) --------------------------------------------------------------


def _revinfo(rt: Runtime, db: Session) -> tuple[tuple[asn1_crl.CertificateList, ...], dict[str, asn1_ocsp.OCSPResponse]]:
    """Current CRLs of our CAs (root CRL covers the issuing CA) and a cache of OCSP responses."""
    state = _state(rt)
    cached = state.revinfo
    if cached is not None and time.monotonic() - cached[0] < REVINFO_TTL:
        return cached[1], cached[2]
    crls = []
    for authority in ca_hierarchy.list_authorities(db):
        if authority.awaiting_signature or not authority.active:
            continue
        try:
            crls.append(_shared(asn1_crl.CertificateList.load(ca_crl.current_crl(rt, db, authority.name))))
        except Problem:
            continue  # a CA without a CRL yet: OCSP (leaves) or nothing
    state.revinfo = (time.monotonic(), tuple(crls), {})
    return state.revinfo[1], state.revinfo[2]


def _ocsp_for(rt: Runtime, db: Session, serial: str) -> asn1_ocsp.OCSPResponse | None:
    _, ocsps = _revinfo(rt, db)
    found = ocsps.get(serial)
    if found is None:
        try:
            found = _shared(asn1_ocsp.OCSPResponse.load(ca_ocsp.response_for(rt, db, serial)))
        except Problem:
            return None
        ocsps[serial] = found
    return found


def _signing_validation_context(rt: Runtime, db: Session, leaf_serials: list[str]) -> Any:
    """A pyHanko validation context with everything B-LT needs, fetched in-process (never HTTP)."""
    from pyhanko_certvalidator import ValidationContext

    chain = _chain(rt, db)
    crls, _ = _revinfo(rt, db)
    ocsps = [r for r in (_ocsp_for(rt, db, s) for s in leaf_serials) if r is not None]
    return ValidationContext(
        trust_roots=[chain[-1]], other_certs=list(chain[:-1]), crls=list(crls), ocsps=ocsps, allow_fetching=False, revocation_mode="hard-fail"
    )


# -- seals ----------------------------------------------------------------------------------------------


def _seal_view(db: Session, row: Seal) -> SealView:
    clients = tuple(db.execute(select(SealClient.client_id).where(SealClient.seal_id == row.id).order_by(SealClient.client_id)).scalars())
    return SealView(row.id, row.name, row.department_id, row.department_name, row.department_uscc, row.key_label, row.cert_serial, row.status, clients, row.created_at, row.cert_der)


def _check_seal_name(name: str) -> str:
    name = (name or "").strip()
    if not 1 <= len(name) <= 60 or any(ch in name for ch in "\n\r\t/\\"):
        raise invalid("signing.invalid_seal_name", "the seal name must be 1–60 characters without slashes or line breaks", name="invalid")
    return name


def create_seal(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    name: str,
    department: str,
    image_png: bytes | None = None,
    clients: tuple[str, ...] | list[str] = (),
) -> SealView:
    """A new seal for a department: HSM key ``seal/<USCC>/<n>``, ``seal`` certificate naming the
    department, stamp image (uploaded or the generated default), allowed clients. Commits ``db``
    (the CA commits the reserved certificate serial before signing)."""
    name = _check_seal_name(name)
    org = identity.resolve_org(db, department)
    image = appearance.check_seal_png(image_png) if image_png else appearance.default_seal_png(org.name, name)
    font = appearance.subset_font(org.name + name)
    n = (db.execute(select(func.count()).select_from(Seal).where(Seal.department_id == org.id)).scalar_one() or 0) + 1
    while rt.token.has_key(f"seal/{org.uscc}/{n}"):
        n += 1  # a key left by an interrupted creation is never reused for a new seal
    label = f"seal/{org.uscc}/{n}"
    key = rt.token.generate(KeySpec.parse(rt.settings.seal_key_spec), label)
    try:
        issued = ca_service.issue_for_public_key(rt, db, actor, profile="seal", public_key=key.public_key(), subject_id=org.id, common_name=name, key_label=label)
    except Exception:
        rt.token.delete(label)  # no certificate: the key must not linger unused
        raise
    row = Seal(
        id=secrets.token_hex(8),
        name=name,
        department_id=org.id,
        department_name=org.name,
        department_uscc=org.uscc,
        key_label=label,
        cert_serial=issued.serial,
        cert_der=issued.der,
        image_png=image,
        font_otf=font,
        status=ACTIVE,
        created_by=actor.ref,
        created_at=_now(),
    )
    db.add(row)
    for client in clients:
        db.add(SealClient(seal_id=row.id, client_id=client, created_at=_now()))
    db.flush()
    _state(rt).trust = None  # the verifier's seal look-up must see the new seal
    rt.audit.record(
        db,
        actor=actor,
        action="signing.seal.create",
        target=f"seal:{row.id}",
        details={"name": name, "department": org.id, "key": label, "serial": issued.serial, "clients": list(clients), "image": "uploaded" if image_png else "generated"},
    )
    return _seal_view(db, row)


def get_seal(db: Session, seal_id: str) -> SealView:
    row = db.get(Seal, seal_id)
    if row is None:
        raise Problem(Kind.NOT_FOUND, "signing.seal_not_found", f"no seal {seal_id}")
    return _seal_view(db, row)


def list_seals(db: Session, *, department_id: str | None = None) -> list[SealView]:
    q = select(Seal).order_by(Seal.created_at)
    if department_id:
        q = q.where(Seal.department_id == department_id)
    return [_seal_view(db, r) for r in db.execute(q).scalars()]


def seal_image(db: Session, seal_id: str) -> bytes:
    row = db.get(Seal, seal_id)
    if row is None:
        raise Problem(Kind.NOT_FOUND, "signing.seal_not_found", f"no seal {seal_id}")
    return row.image_png


def replace_seal_image(rt: Runtime, db: Session, actor: Actor, *, seal_id: str, image_png: bytes) -> SealView:
    """Replace a seal's stamp image (validated and normalised like an uploaded one at creation).
    Documents sealed from now on show it; each process notices the change at its next sealing."""
    row = db.get(Seal, seal_id)
    if row is None:
        raise Problem(Kind.NOT_FOUND, "signing.seal_not_found", f"no seal {seal_id}")
    image = appearance.check_seal_png(image_png)
    previous = hashlib.sha256(row.image_png).hexdigest()
    row.image_png = image
    db.flush()
    rt.audit.record(
        db,
        actor=actor,
        action="signing.seal.image",
        target=f"seal:{seal_id}",
        details={"previous_sha256": previous, "sha256": hashlib.sha256(image).hexdigest(), "bytes": len(image)},
    )
    _state(rt).seals.pop(seal_id, None)
    return _seal_view(db, row)


def allow_client(rt: Runtime, db: Session, actor: Actor, *, seal_id: str, client_id: str) -> SealView:
    row = db.get(Seal, seal_id)
    if row is None:
        raise Problem(Kind.NOT_FOUND, "signing.seal_not_found", f"no seal {seal_id}")
    if db.get(SealClient, (seal_id, client_id)) is None:
        db.add(SealClient(seal_id=seal_id, client_id=client_id, created_at=_now()))
        db.flush()
        rt.audit.record(db, actor=actor, action="signing.seal.allow_client", target=f"seal:{seal_id}", details={"client": client_id})
    return _seal_view(db, row)


def set_seal_status(rt: Runtime, db: Session, actor: Actor, *, seal_id: str, active: bool) -> SealView:
    row = db.get(Seal, seal_id)
    if row is None:
        raise Problem(Kind.NOT_FOUND, "signing.seal_not_found", f"no seal {seal_id}")
    row.status = ACTIVE if active else DISABLED
    rt.audit.record(db, actor=actor, action="signing.seal.enable" if active else "signing.seal.disable", target=f"seal:{seal_id}", details={})
    _state(rt).seals.pop(seal_id, None)
    return _seal_view(db, row)


def _usable_seal(db: Session, actor: Actor, seal_id: str) -> Seal:
    """The seal, if ``actor`` may use it: active, and for department systems (clients) on the seal's
    client list (the ``seal:<id>`` scope is checked by the route guard)."""
    row = db.get(Seal, seal_id)
    if row is None:
        raise Problem(Kind.NOT_FOUND, "signing.seal_not_found", f"no seal {seal_id}")
    if row.status != ACTIVE:
        raise Problem(Kind.CONFLICT, "signing.seal_disabled", f"seal {seal_id} is disabled")
    if actor.kind == "client" and db.get(SealClient, (seal_id, actor.id)) is None:
        raise Problem(Kind.FORBIDDEN, "signing.client_not_allowed", f"client {actor.id} may not use seal {seal_id}")
    return row


def _material(rt: Runtime, db: Session, row: Seal) -> _SealMaterial:
    state = _state(rt)
    cached = state.seals.get(row.id)
    if cached is not None and cached.serial == row.cert_serial and cached.image_png == row.image_png:  # image replaced by another process
        return cached
    chain = _chain(rt, db)
    cert = _shared(asn1_x509.Certificate.load(row.cert_der))  # the seal's material serves concurrent requests
    signer = HsmSigner(rt.token.key(row.key_label), cert, chain)  # type: ignore[arg-type]
    style = appearance.stamp_style(appearance.SealLook(row.image_png, row.font_otf, row.department_name, row.name))
    tsa_size = 0
    try:
        tsa = tsa_authority(rt, db)
        tsa_size = len(tsa.cert_der) + sum(len(c) for c in tsa.chain_der) + 1200
    except Problem:
        pass
    # pyHanko's bytes_reserved counts the hex digits of /Contents: twice the CMS DER size. Estimated
    # from the certificates it embeds, so pyHanko skips its trial signature (≈1.7× faster here).
    reserved = 2 * (len(row.cert_der) + sum(len(c.dump()) for c in chain) + tsa_size + signer.signature_size() + 1500)
    key = signer.key
    alg = jws_algorithm_for(key)  # type: ignore[arg-type]
    batch = getattr(key, "sign_digests_raw", None) if alg.startswith("ES") else None  # EC: digests signed in one token borrow
    jws = records.JwsSealer(key, [row.cert_der, *(c.dump() for c in chain[:-1])], alg=alg, sign_digest=lambda data: sign_jws(key, alg, data), sign_digests=batch)  # type: ignore[arg-type]
    material = _SealMaterial(row.cert_serial, signer, style, row.department_name, reserved, jws, row.image_png)
    state.seals[row.id] = material
    return material


def verify_url(rt: Runtime, document_id: str) -> str:
    return f"{rt.settings.public_url}/verify/{document_id}"


def seal_pdf(rt: Runtime, db: Session, actor: Actor, *, seal_id: str, pdf: bytes, options: pades.PadesOptions) -> SealedPdf:
    """Seal a PDF with ``seal_id`` at ``options.level``; register the sealed document (its id is in
    the QR code) and audit, in one transaction."""
    row = _usable_seal(db, actor, seal_id)
    material = _material(rt, db, row)
    document_id = secrets.token_urlsafe(12)
    url = verify_url(rt, document_id)
    needs_ts = options.level != "B-B"
    timestamper = _timestamper(rt, db) if needs_ts else None
    vc = None
    if options.level in ("B-LT", "B-LTA"):
        tsa = tsa_authority(rt, db)
        vc = _signing_validation_context(rt, db, [row.cert_serial, format(tsa.cert.serial_number, "x")])
    sealed = pades.seal_pdf_bytes(
        pdf,
        signer=material.signer,
        field_name=f"Seal-{document_id[:8]}",
        options=options,
        signing_time=clock.now(),
        verify_url=url,
        department=material.department,
        stamp_style=material.style if options.placement.visible else None,
        timestamper=timestamper,
        validation_context=vc,
        bytes_reserved=material.bytes_reserved,
        max_bytes=rt.settings.max_upload_bytes,
    )
    digest = hashlib.sha256(sealed).hexdigest()
    doc = SealedDocument(id=document_id, seal_id=seal_id, kind="pdf", level=options.level, sha256=digest, size=len(sealed), requested_by=actor.ref, created_at=_now())
    db.add(doc)
    rt.audit.record(
        db,
        actor=actor,
        action="signing.seal.pdf",
        target=f"seal:{seal_id}",
        details={"document": document_id, "level": options.level, "sha256": digest, "input_sha256": hashlib.sha256(pdf).hexdigest(), "certify": options.certify},
    )
    return SealedPdf(_doc_view(doc, row), sealed, url)


def _doc_view(doc: SealedDocument, seal: Seal | None) -> SealedDocumentView:
    return SealedDocumentView(doc.id, doc.seal_id, doc.kind, doc.level, doc.sha256, doc.size, doc.created_at, seal.name if seal else "", seal.department_name if seal else "")


RECORD_FORMATS = ("jws", "cms")
RECORD_LEVELS = ("B-B", "B-T")
MAX_RECORDS_PER_CALL = 1000


@dataclass(frozen=True)
class SealedRecord:
    document_id: str
    format: str
    level: str
    signature: str  # JWS text, or base64 DER for CMS
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"document_id": self.document_id, "format": self.format, "level": self.level, "signature": self.signature, "sha256": self.sha256}


def seal_records(
    rt: Runtime,
    db: Session,
    actor: Actor,
    *,
    seal_id: str,
    records_: list[Any],
    format: str = "jws",
    level: str = "B-B",
    detached: bool = False,
) -> list[SealedRecord]:
    """Seal JSON records (canonical JSON bytes) as JWS/JAdES or detached CMS/CAdES. A batch is one
    transaction and one audit entry (it lists the document ids' digest)."""
    if format not in RECORD_FORMATS:
        raise invalid("signing.bad_record_format", f"format must be one of {', '.join(RECORD_FORMATS)}", format="unknown")
    if level not in RECORD_LEVELS:
        raise invalid("signing.bad_record_level", f"records are sealed at {' or '.join(RECORD_LEVELS)}", level="unsupported")
    if not records_ or len(records_) > MAX_RECORDS_PER_CALL:
        raise invalid("signing.bad_record_count", f"send 1 to {MAX_RECORDS_PER_CALL} records", records="count")
    row = _usable_seal(db, actor, seal_id)
    material = _material(rt, db, row)
    now = clock.now()
    tsa = tsa_authority(rt, db) if level == "B-T" else None
    payloads = [records.canonical_json(record) for record in records_]
    if any(len(payload) > records.MAX_RECORD_BYTES for payload in payloads):
        raise Problem(Kind.TOO_LARGE, "signing.record_too_large", f"a record is limited to {records.MAX_RECORD_BYTES} bytes")
    if format == "jws":
        sealed = material.jws.seal_many(payloads, signing_time=now, detached=detached, timestamp=tsa.token_for_digest if tsa else None)
        sizes = [len(text) for text, _ in sealed]  # ASCII
    else:
        ders = [records.seal_cms(material.signer, payload, timestamper=_timestamper(rt, db) if tsa else None) for payload in payloads]
        sealed = [(base64.b64encode(der).decode(), hashlib.sha256(der).hexdigest()) for der in ders]
        sizes = [len(der) for der in ders]
    ids = _document_ids(len(payloads))
    created = _now()
    out = [SealedRecord(document_id, format, level, signature, digest) for document_id, (signature, digest) in zip(ids, sealed, strict=True)]
    docs = [
        {"id": document_id, "seal_id": seal_id, "kind": format, "level": level, "sha256": digest, "size": size, "requested_by": actor.ref, "created_at": created}
        for document_id, (_, digest), size in zip(ids, sealed, sizes, strict=True)
    ]
    _insert_documents(db, docs)
    rt.audit.record(
        db,
        actor=actor,
        action=f"signing.seal.{format}",
        target=f"seal:{seal_id}",
        details={"count": len(out), "level": level, "detached": detached, "documents_sha256": hashlib.sha256("".join(r.document_id for r in out).encode()).hexdigest()},
    )
    return out


_DOCUMENT_COLUMNS = ("id", "seal_id", "kind", "level", "sha256", "size", "requested_by", "created_at")


def _insert_documents(db: Session, docs: list[dict[str, Any]]) -> None:
    """Register a batch of sealed records in the caller's transaction: ``COPY … FROM STDIN`` on
    PostgreSQL (≈ 24 µs a row through an ORM executemany, ≈ 3 µs here, and less work for the
    server too), one executemany elsewhere."""
    if db.get_bind().dialect.name == "postgresql" and len(docs) > 1:
        driver = db.connection().connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(f"COPY {SealedDocument.__tablename__} ({', '.join(_DOCUMENT_COLUMNS)}) FROM STDIN") as copy:  # type: ignore[union-attr]
            for doc in docs:
                copy.write_row(tuple(doc[c] for c in _DOCUMENT_COLUMNS))
        return
    db.execute(insert(SealedDocument), docs)


def _document_ids(n: int) -> list[str]:
    """``n`` ids like ``secrets.token_urlsafe(12)`` (16 characters), from one read of the system's
    random source (one ``getrandom`` per record was a GIL hand-off each under load)."""
    raw = secrets.token_bytes(12 * n)
    return [base64.urlsafe_b64encode(raw[i : i + 12]).decode("ascii") for i in range(0, 12 * n, 12)]


def registered_document(db: Session, document_id: str) -> SealedDocumentView:
    doc = db.get(SealedDocument, document_id)
    if doc is None:
        raise Problem(Kind.NOT_FOUND, "verify.document_not_found", "no document with this verification code was sealed here")
    return _doc_view(doc, db.get(Seal, doc.seal_id))


def find_registered(db: Session, sha256: str) -> SealedDocumentView | None:
    doc = db.execute(select(SealedDocument).where(SealedDocument.sha256 == sha256).limit(1)).scalar_one_or_none()
    return _doc_view(doc, db.get(Seal, doc.seal_id)) if doc else None


# -- verification ------------------------------------------------------------------------------------


def _external_anchors(rt: Runtime) -> list[asn1_x509.Certificate]:
    out = []
    for path in rt.settings.external_trust_anchors:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise Problem(Kind.INVALID_CONFIG, "verify.anchor_unreadable", f"external trust anchor {path}: {exc.strerror}") from None
        for cert in x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]:
            out.append(_shared(asn1_x509.Certificate.load(_der(cert))))
    return out


def trust_setup(rt: Runtime) -> TrustSetup:
    """Our root(s) and configured external roots, our CRLs, and look-ups into our register."""
    state = _state(rt)
    cached = state.trust
    if cached is not None and time.monotonic() - cached[0] < TRUST_TTL and state.revinfo is not None and time.monotonic() - state.revinfo[0] < REVINFO_TTL:
        return cached[1]
    # Verification is a public read path that tolerates replication lag (a revocation reaches it
    # as it reaches OCSP clients): the read replica serves it when there is one (core.db).
    with rt.db.replica_read() as db:
        chain = _chain(rt, db)
        crls, _ = _revinfo(rt, db)
        seals = {r.cert_serial: (r.id, r.name, r.department_id) for r in db.execute(select(Seal)).scalars()}
    our_issuers = {c.subject.dump() for c in chain}

    def register(cert: asn1_x509.Certificate) -> Revocation | None:
        if cert.issuer.dump() not in our_issuers:
            return None
        serial = format(cert.serial_number, "x")
        try:
            with rt.db.replica_read() as db:
                view = ca_service.get_certificate(db, serial)
        except Problem:
            return None
        if view.der is not None and view.der != cert.dump():
            return None  # same serial, different certificate: not ours
        status = {"revoked": "revoked", "on_hold": "on_hold", "issued": "good"}.get(view.status, "unknown")
        return Revocation(status, "platform-register", checked_at=_now(), revoked_at=view.revoked_at, reason=view.revocation_reason)

    def seal_of(serial_hex: str) -> tuple[str, str, str] | None:
        return seals.get(serial_hex)

    setup = TrustSetup(anchors=(chain[-1], *_external_anchors(rt)), intermediates=chain[:-1], crls=crls, register=register, seal_of=seal_of)
    state.trust = (time.monotonic(), setup)
    return setup


def verify_document(rt: Runtime, data: bytes, *, name: str | None = None, detached: bytes | None = None) -> Report:
    """Verify a PDF, a JWS or a CMS signature (sniffed from the bytes) into one report."""
    from signing import records

    if len(data) > rt.settings.max_upload_bytes:
        raise Problem(Kind.TOO_LARGE, "verify.too_large", f"documents are limited to {rt.settings.max_upload_bytes} bytes")
    if not data:
        raise Problem(Kind.INVALID_INPUT, "verify.empty", "the document is empty")
    traffic.count(rt, "verifications")  # the dashboard's daily traffic (no I/O here)
    setup = trust_setup(rt)
    digest = hashlib.sha256(data).hexdigest()
    with rt.db.replica_read() as db:
        found = find_registered(db, digest)
    registered = (found.id, found.seal_name, found.created_at) if found else None
    kind = records.sniff(data)
    if kind == "pdf":
        return verify_pdf(data, setup, max_bytes=rt.settings.max_upload_bytes, name=name, registered=registered)
    if kind == "jws":
        return records.verify_jws(data, setup, detached=detached, name=name, registered=registered)
    if kind == "cms":
        return records.verify_cms(data, setup, detached=detached, name=name, registered=registered)
    raise Problem(Kind.UNSUPPORTED_MEDIA_TYPE, "verify.unknown_format", "the document is neither a PDF, a JWS nor a CMS signature")
