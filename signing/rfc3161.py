"""Time-Stamp Protocol (RFC 3161, with the ESSCertIDv2 update of RFC 5816).

``TimestampAuthority.respond(query_der)`` turns a ``TimeStampReq`` into a ``TimeStampResp``:
a granted token signed in the HSM, or a ``rejection`` with the ``PKIFailureInfo`` bit that names the
problem (§2.4.2) — it never raises for bad input, so ``POST /tsa`` never answers 500 to a client.

Tokens are built with the DER writers of :mod:`signing.der` from parts computed once per unit
(certificate hash, issuer/serial, the ``signingCertificateV2`` attribute), so the per-token work is
one hash, one HSM signature and some byte concatenation.

Serial numbers (§2.4.2: "unique for each TimeStampToken issued by a given TSA") are
``(microseconds since the epoch << 20) | instance``: strictly increasing within a process (a
repeated microsecond borrows the next one), ordered by time across processes, and unique because
every issuing process registers its own instance number in the database first.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import cms, tsp
from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from core import clock
from signing import der

# id-ct-TSTInfo (RFC 3161 §2.4.2), CMS OIDs (RFC 5652), ESS (RFC 5035)
OID_TST_INFO = "1.2.840.113549.1.9.16.1.4"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
OID_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OID_RSA_SHA256 = "1.2.840.113549.1.1.11"

# Message-imprint algorithms we timestamp, with their digest lengths. SHA-1 and MD5 are refused
# (badAlg): a timestamp over a collidable digest proves nothing.
ACCEPTED_HASHES = {
    "2.16.840.1.101.3.4.2.1": ("sha256", 32),
    "2.16.840.1.101.3.4.2.2": ("sha384", 48),
    "2.16.840.1.101.3.4.2.3": ("sha512", 64),
    "2.16.840.1.101.3.4.2.8": ("sha3_256", 32),
    "2.16.840.1.101.3.4.2.9": ("sha3_384", 48),
    "2.16.840.1.101.3.4.2.10": ("sha3_512", 64),
}
NAMES_TO_OID = {name: dotted for dotted, (name, _) in ACCEPTED_HASHES.items()}

MAX_NONCE_BITS = 512
MAX_QUERY_BYTES = 8192


class Failure(enum.IntEnum):
    """PKIFailureInfo bits (RFC 3161 §2.4.2)."""

    BAD_ALG = 0
    BAD_REQUEST = 2
    BAD_DATA_FORMAT = 5
    TIME_NOT_AVAILABLE = 14
    UNACCEPTED_POLICY = 15
    UNACCEPTED_EXTENSION = 16
    ADD_INFO_NOT_AVAILABLE = 17
    SYSTEM_FAILURE = 25

    @property
    def code(self) -> str:
        return "tsa." + self.name.lower()


class TimestampRejected(Exception):
    """A query we refuse; ``respond`` turns it into a ``rejection`` response."""

    def __init__(self, failure: Failure, text: str) -> None:
        super().__init__(text)
        self.failure = failure
        self.text = text


@dataclass(frozen=True)
class TimestampQuery:
    """A parsed, validated ``TimeStampReq``. ``imprint_der`` is echoed byte for byte (§2.4.2)."""

    hash_name: str
    hashed_message: bytes
    imprint_der: bytes
    policy: str | None
    nonce: int | None
    cert_req: bool


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int] | None:
    """(tag, content start, content end) of the DER element at ``pos``; ``None`` if it is not a
    definite-length, single-octet-tag element that fits before ``end``."""
    if pos + 2 > end:
        return None
    tag, first = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        return None
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 3 or pos + n > end:
            return None
        length = int.from_bytes(data[pos : pos + n], "big")
        if length < 0x80 or (n > 1 and data[pos] == 0):
            return None  # not the shortest form (X.690 §10.1)
        pos += n
    if pos + length > end:
        return None
    return tag, pos, pos + length


_OID_NAMES = {der.oid(dotted)[2:]: dotted for dotted in ACCEPTED_HASHES}


def _fast_query(body: bytes, policy: str) -> TimestampQuery | None:
    """The common, well-formed query (v1, an accepted hash with absent/NULL parameters, our policy
    or none, optional nonce and certReq, no extensions) read straight from its DER — about a
    quarter of a token's CPU time goes to asn1crypto otherwise. Anything else returns ``None`` and
    takes the general parser, which also words the rejection."""
    n = len(body)
    top = _tlv(body, 0, n)
    if top is None or top[0] != 0x30 or top[2] != n:
        return None
    pos, end = top[1], top[2]
    version = _tlv(body, pos, end)
    if version is None or version[0] != 0x02 or body[version[1] : version[2]] != b"\x01":
        return None
    imprint = _tlv(body, version[2], end)
    if imprint is None or imprint[0] != 0x30:
        return None
    alg = _tlv(body, imprint[1], imprint[2])
    if alg is None or alg[0] != 0x30:
        return None
    oid = _tlv(body, alg[1], alg[2])
    if oid is None or oid[0] != 0x06:
        return None
    dotted = _OID_NAMES.get(body[oid[1] : oid[2]])
    if dotted is None or (oid[2] != alg[2] and body[oid[2] : alg[2]] != b"\x05\x00"):
        return None
    digest = _tlv(body, alg[2], imprint[2])
    if digest is None or digest[0] != 0x04 or digest[2] != imprint[2]:
        return None
    name, size = ACCEPTED_HASHES[dotted]
    hashed = body[digest[1] : digest[2]]
    if len(hashed) != size:
        return None
    pos = imprint[2]
    req_policy = nonce = None
    cert_req = False
    item = _tlv(body, pos, end) if pos < end else None
    if item is not None and item[0] == 0x06:
        req_policy = body[item[1] : item[2]]
        pos = item[2]
        item = _tlv(body, pos, end) if pos < end else None
    if item is not None and item[0] == 0x02:
        raw = body[item[1] : item[2]]
        if not raw or raw[0] & 0x80 or len(raw) * 8 > MAX_NONCE_BITS + 8:
            return None
        nonce = int.from_bytes(raw, "big")
        pos = item[2]
        item = _tlv(body, pos, end) if pos < end else None
    if item is not None and item[0] == 0x01:
        if item[2] - item[1] != 1 or body[item[1]] not in (0x00, 0xFF):
            return None
        cert_req = body[item[1]] == 0xFF
        pos = item[2]
    if pos != end:
        return None  # extensions or anything unexpected
    if req_policy is not None:
        if req_policy != der.oid(policy)[2:]:
            return None
        req_policy = policy  # type: ignore[assignment]
    if nonce is not None and nonce.bit_length() > MAX_NONCE_BITS:
        return None
    return TimestampQuery(name, hashed, body[version[2] : imprint[2]], req_policy, nonce, cert_req)  # type: ignore[arg-type]


def parse_query(body: bytes, *, policy: str) -> TimestampQuery:
    """Parse and check a ``TimeStampReq`` (§2.4.1). Raises :class:`TimestampRejected`."""
    if not body or len(body) > MAX_QUERY_BYTES:
        raise TimestampRejected(Failure.BAD_DATA_FORMAT, "the query is empty or too large")
    fast = _fast_query(body, policy)
    return fast if fast is not None else _general_query(body, policy)


def _general_query(body: bytes, policy: str) -> TimestampQuery:
    """Any query, through asn1crypto: the precise rejection for whatever is wrong with it."""
    try:
        req = tsp.TimeStampReq.load(body, strict=True)
        version = req["version"].native
        imprint = req["message_imprint"]
        alg = imprint["hash_algorithm"]
        alg_oid = alg["algorithm"].dotted
        params = alg["parameters"].native
        hashed = imprint["hashed_message"].native
        req_policy = req["req_policy"].dotted if req["req_policy"].native is not None else None
        nonce = req["nonce"].native
        cert_req = bool(req["cert_req"].native)
        has_extensions = req["extensions"].native is not None
        imprint_der = imprint.dump()
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise TimestampRejected(Failure.BAD_DATA_FORMAT, f"the query is not a DER TimeStampReq: {type(exc).__name__}") from None
    if version != "v1" and version != 1:
        raise TimestampRejected(Failure.BAD_REQUEST, "only version 1 queries are supported")
    if alg_oid not in ACCEPTED_HASHES:
        raise TimestampRejected(Failure.BAD_ALG, f"unsupported message imprint algorithm {alg_oid}")
    if params is not None:
        raise TimestampRejected(Failure.BAD_ALG, "hash algorithm parameters must be absent or NULL")
    name, size = ACCEPTED_HASHES[alg_oid]
    if not isinstance(hashed, bytes) or len(hashed) != size:
        raise TimestampRejected(Failure.BAD_DATA_FORMAT, f"the {name} imprint must be {size} bytes")
    if req_policy is not None and req_policy != policy:
        raise TimestampRejected(Failure.UNACCEPTED_POLICY, f"policy {req_policy} is not offered (only {policy})")
    if has_extensions:
        raise TimestampRejected(Failure.UNACCEPTED_EXTENSION, "request extensions are not supported")
    if nonce is not None and (nonce < 0 or nonce.bit_length() > MAX_NONCE_BITS):
        raise TimestampRejected(Failure.BAD_REQUEST, f"the nonce must be a non-negative integer of at most {MAX_NONCE_BITS} bits")
    return TimestampQuery(name, hashed, imprint_der, req_policy, nonce, cert_req)


def rejection(failure: Failure, text: str) -> bytes:
    """``TimeStampResp`` with status ``rejection`` (2), a status string and the failure bit."""
    status = der.seq(der.integer(2), der.seq(der.utf8(text[:200])), der.bit_string_named([int(failure)]))
    return der.seq(status)


class TimeStampResp(asn1_core.Sequence):
    """asn1crypto's ``TimeStampResp`` makes ``timeStampToken`` mandatory; RFC 3161 §2.4.2 says
    OPTIONAL (absent in every rejection)."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def status_of(response_der: bytes) -> tuple[str, list[int]]:
    """(PKIStatus name, failure bits) of a response (tests, API headers)."""
    info = TimeStampResp.load(response_der)["status"]
    fail_info = info["fail_info"]
    bits: list[int] = []
    if fail_info.native is not None:
        raw = fail_info.contents
        unused, data = raw[0], raw[1:]
        bits = [i for i in range(len(data) * 8 - unused) if (data[i // 8] >> (7 - i % 8)) & 1]
    return info["status"].native, bits


class SerialClock:
    """Monotonic, unique serial numbers for one issuing process (see the module docstring)."""

    INSTANCE_BITS = 20

    def __init__(self, instance: int) -> None:
        if not 0 <= instance < (1 << self.INSTANCE_BITS):
            raise ValueError(f"instance must fit in {self.INSTANCE_BITS} bits")
        self.instance = instance
        self._last = 0
        self._lock = threading.Lock()

    def next(self, at: datetime) -> tuple[int, datetime]:
        """(serial, genTime): genTime moves with the serial when a microsecond is borrowed."""
        micros = int((at - _EPOCH) / timedelta(microseconds=1))
        with self._lock:
            if micros <= self._last:
                micros = self._last + 1
            self._last = micros
        return (micros << self.INSTANCE_BITS) | self.instance, _EPOCH + timedelta(microseconds=micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GRANTED = der.seq(der.integer(0))  # PKIStatusInfo { status granted }


class TimestampAuthority:
    """One timestamp unit: its HSM key, its certificate (and chain), policy and accuracy."""

    def __init__(
        self,
        *,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        cert_der: bytes,
        chain_der: list[bytes],
        policy: str,
        accuracy_ms: int,
        instance: int,
    ) -> None:
        self.key = key
        self.cert_der = cert_der
        self.cert = asn1_x509.Certificate.load(cert_der)
        self.cert.native  # parsed through now: threads share it, and asn1crypto's lazy parsing is not thread-safe
        self.chain_der = list(chain_der)
        self.policy = policy
        self.serials = SerialClock(instance)
        self._is_ec = isinstance(key, ec.EllipticCurvePrivateKey)
        # -- parts fixed for the unit, encoded once --------------------------------------------
        self._policy_der = der.oid(policy)
        seconds, millis = divmod(accuracy_ms, 1000)
        acc = (der.integer(seconds) if seconds else b"") + (der.tlv(0x80, der.integer(millis)[2:]) if millis else b"")
        self._accuracy_der = der.seq(acc)
        name_der = self.cert["tbs_certificate"]["subject"].dump()
        self._tsa_name_der = der.explicit(0, der.explicit(4, name_der))
        issuer_der = self.cert["tbs_certificate"]["issuer"].dump()
        serial_der = der.integer(self.cert.serial_number)
        self._sid_der = der.seq(issuer_der, serial_der)
        ess_cert_id_v2 = der.seq(  # hashAlgorithm DEFAULT sha256 is omitted (DER, RFC 5035 §5.4.1.1)
            der.octet_string(hashlib.sha256(cert_der).digest()),
            der.seq(der.seq(der.explicit(4, issuer_der)), serial_der),
        )
        self._signing_cert_attr = der.seq(der.oid(OID_SIGNING_CERTIFICATE_V2), der.set_of(der.seq(der.seq(ess_cert_id_v2))))
        self._content_type_attr = der.seq(der.oid(OID_CONTENT_TYPE), der.set_of(der.oid(OID_TST_INFO)))
        self._message_digest_oid = der.oid(OID_MESSAGE_DIGEST)
        self._signing_time_oid = der.oid(OID_SIGNING_TIME)
        self._sha256_alg = der.seq(der.oid(OID_SHA256))
        self._sig_alg = der.seq(der.oid(OID_ECDSA_SHA256)) if self._is_ec else der.seq(der.oid(OID_RSA_SHA256), b"\x05\x00")
        self._certs_der = der.tlv(0xA0, b"".join(sorted([cert_der, *self.chain_der])))  # [0] IMPLICIT SET OF
        self._econtent_type = der.oid(OID_TST_INFO)
        self._signed_data_oid = der.oid(OID_SIGNED_DATA)
        self._version_der = der.integer(1)
        # The signed attributes differ per token only in the signing time (UTCTime: always 13
        # octets) and the message digest (SHA-256: 32): the SET OF is a fixed sequence of byte
        # strings with two holes. Its DER order (X.690 §11.6) is decided by the bytes before the
        # holes, so it is worked out once here from sample values.
        sample_time, sample_digest = b"\x00" * 13, b"\x00" * 32
        signing_time_attr = der.seq(self._signing_time_oid, der.set_of(der.tlv(0x17, sample_time)))
        digest_attr = der.seq(self._message_digest_oid, der.set_of(der.octet_string(sample_digest)))
        ordered = sorted([self._content_type_attr, signing_time_attr, digest_attr, self._signing_cert_attr])
        template = der.set_of(*ordered)
        time_at = template.index(signing_time_attr) + len(signing_time_attr) - len(sample_time)
        digest_at = template.index(digest_attr) + len(digest_attr) - len(sample_digest)
        assert time_at < digest_at  # tag order: content type (0x18 long), signing time, digest, ESS
        self._attrs_parts = (template[:time_at], template[time_at + 13 : digest_at], template[digest_at + 32 :])

    # -- protocol ------------------------------------------------------------------------------

    def respond(self, query_der: bytes) -> bytes:
        """A ``TimeStampResp`` for any bytes: granted, or a rejection naming the failure."""
        try:
            query = parse_query(query_der, policy=self.policy)
        except TimestampRejected as exc:
            return rejection(exc.failure, exc.text)
        return self.grant(query)

    def respond_many(self, queries: list[bytes]) -> list[bytes]:
        """:meth:`respond` for each query (``POST /tsa`` batches), the granted tokens signed in one
        token borrow where the key offers it."""
        out: list[bytes | TimestampQuery] = []
        for query_der in queries:
            try:
                out.append(parse_query(query_der, policy=self.policy))
            except TimestampRejected as exc:
                out.append(rejection(exc.failure, exc.text))
        prepared = [self._prepare(q) for q in out if isinstance(q, TimestampQuery)]
        signatures = self._sign_many([attrs for _, _, attrs in prepared])
        tokens = iter([der.seq(_GRANTED, self._assemble(*p, sig)) for p, sig in zip(prepared, signatures, strict=True)])
        return [next(tokens) if isinstance(q, TimestampQuery) else q for q in out]

    def token_for_digest(self, digest: bytes, hash_name: str = "sha256") -> bytes:
        """A token over ``digest`` for our own use (JAdES/CAdES signature timestamps)."""
        imprint = der.seq(der.seq(der.oid(NAMES_TO_OID[hash_name])), der.octet_string(digest))
        return self.token(TimestampQuery(hash_name, digest, imprint, None, None, True))

    def grant(self, query: TimestampQuery) -> bytes:
        return der.seq(_GRANTED, self.token(query))

    def token(self, query: TimestampQuery) -> bytes:
        """The ``TimeStampToken`` (a CMS ``ContentInfo``) for a validated query."""
        prepared = self._prepare(query)
        return self._assemble(*prepared, self._sign(prepared[2]))

    def _prepare(self, query: TimestampQuery) -> tuple[TimestampQuery, bytes, bytes]:
        """(query, TSTInfo, signed attributes): everything before the signature."""
        serial, gen_time = self.serials.next(clock.now())
        tst_info = der.seq(
            self._version_der,
            self._policy_der,
            query.imprint_der,
            der.integer(serial),
            _generalized_time(gen_time),
            self._accuracy_der,
            der.integer(query.nonce) if query.nonce is not None else b"",
            self._tsa_name_der,
        )
        before_time, before_digest, after_digest = self._attrs_parts
        signed_attrs = b"".join((before_time, _utc_time_text(gen_time), before_digest, hashlib.sha256(tst_info).digest(), after_digest))
        return query, tst_info, signed_attrs

    def _assemble(self, query: TimestampQuery, tst_info: bytes, signed_attrs: bytes, signature: bytes) -> bytes:
        signer_info = der.seq(
            self._version_der,
            self._sid_der,
            self._sha256_alg,
            b"\xa0" + signed_attrs[1:],  # [0] IMPLICIT SET OF Attribute: same content, new tag
            self._sig_alg,
            der.octet_string(signature),
        )
        signed_data = der.seq(
            der.integer(3),
            der.tlv(0x31, self._sha256_alg),
            der.seq(self._econtent_type, der.explicit(0, der.octet_string(tst_info))),
            self._certs_der if query.cert_req else b"",
            der.tlv(0x31, signer_info),
        )
        return der.seq(self._signed_data_oid, der.explicit(0, signed_data))

    def _sign_many(self, items: list[bytes]) -> list[bytes]:
        batch = getattr(self.key, "sign_digests_raw", None) if self._is_ec else None
        if batch is None or len(items) < 2:
            return [self._sign(item) for item in items]
        out = []
        for raw in batch([hashlib.sha256(item).digest() for item in items]):
            half = len(raw) // 2
            out.append(utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")))
        return out

    def _sign(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        if self._is_ec:
            raw_sign = getattr(self.key, "sign_digest_raw", None)
            if raw_sign is not None:  # HSM key: the token signs the digest, we DER-encode r||s
                raw = raw_sign(digest)
                half = len(raw) // 2
                return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
            return self.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # type: ignore[call-arg, arg-type]
        return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))  # type: ignore[call-arg]


def _utc_time_text(at: datetime) -> bytes:
    """The 13 octets of a UTCTime ``YYMMDDHHMMSSZ`` for a UTC ``at`` (what ``der.utc_time`` writes
    after its tag and length; formatted by hand: ``strftime`` cost more than the DER around it)."""
    return b"%02d%02d%02d%02d%02d%02dZ" % (at.year % 100, at.month, at.day, at.hour, at.minute, at.second)


def _generalized_time(at: datetime) -> bytes:
    """``der.generalized_time`` for a UTC ``at`` (the serial clock's genTime), by hand."""
    text = b"%04d%02d%02d%02d%02d%02d" % (at.year, at.month, at.day, at.hour, at.minute, at.second)
    if at.microsecond:
        text += b"." + (b"%06d" % at.microsecond).rstrip(b"0")
    return b"\x18" + bytes((len(text) + 1,)) + text + b"Z"


def build_query(digest: bytes, hash_name: str = "sha256", *, nonce: int | None = None, cert_req: bool = True, policy: str | None = None) -> bytes:
    """A ``TimeStampReq`` (clients, tests and the in-process timestamper)."""
    imprint = der.seq(der.seq(der.oid(NAMES_TO_OID[hash_name])), der.octet_string(digest))
    return der.seq(
        der.integer(1),
        imprint,
        der.oid(policy) if policy else b"",
        der.integer(nonce) if nonce is not None else b"",
        der.boolean(True) if cert_req else b"",
    )
