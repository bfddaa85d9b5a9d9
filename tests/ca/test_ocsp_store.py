"""The pre-signed OCSP table's insert helper reports what it did, on both backends.

``ca.ocsp._insert`` decides whether a first signature lost a race to a status change (0 rows
inserted → re-read the stored answer) and ``presign_missing`` reports its count from it. SQLAlchemy
2.1 gives ``rowcount == -1`` for INSERT on PostgreSQL, so the count is taken from RETURNING.
"""

from __future__ import annotations

from ca import ocsp, service
from ca.models import OcspResponse
from tests.ca.conftest import ACTOR, make_csr


def _values(issuer: str, serial: str, der: bytes) -> dict[str, object]:
    return {"issuer": issuer, "serial": serial, "status": "good", "responder": "-", "this_update": ocsp.EPOCH, "next_update": ocsp.EPOCH, "seq": 0, "der": der}


def test_insert_counts_inserted_rows_and_conflicts(rt, subjects) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        cert = service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id)
    with rt.db.transaction() as db:
        db.query(OcspResponse).filter_by(issuer=cert.issuer, serial=cert.serial).delete()  # the publisher may have been first
        assert ocsp._insert(db, _values(cert.issuer, cert.serial, b"first"), overwrite=False) == 1
        assert ocsp._insert(db, _values(cert.issuer, cert.serial, b"second"), overwrite=False) == 0
        assert db.get(OcspResponse, (cert.issuer, cert.serial)).der == b"first"
        assert ocsp._insert(db, _values(cert.issuer, cert.serial, b"third"), overwrite=True) == 1
        db.expire_all()
        assert db.get(OcspResponse, (cert.issuer, cert.serial)).der == b"third"
        db.rollback()


def test_presign_missing_reports_what_it_signed(rt, subjects) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        issued = [service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id) for _ in range(3)]
    with rt.db.read() as db:
        since = min(service.get_certificate(db, c.serial).created_at for c in issued)
    count, newest = ocsp.presign_missing(rt, since=since)
    assert count >= 0 and newest >= since  # a running publisher may have signed some first
    with rt.db.read() as db:
        for c in issued:
            assert db.get(OcspResponse, (c.issuer, c.serial)) is not None
    assert ocsp.presign_missing(rt, since=since)[0] == 0


def test_warm_cache_loads_fresh_responses_and_skips_stale_ones(rt, subjects) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    with rt.db.transaction() as db:
        fresh, stale = (service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id) for _ in range(2))
    with rt.db.read() as db:
        since = service.get_certificate(db, fresh.serial).created_at
    ocsp.presign_missing(rt, since=since)
    with rt.db.transaction() as db:  # past half its validity: must not be served from a warm cache
        db.execute(update(OcspResponse).where(OcspResponse.serial == stale.serial).values(this_update=ocsp.EPOCH))
    st = ocsp.state(rt)
    keys = {c.serial: (c.issuer, int(c.serial, 16), "sha1") for c in (fresh, stale)}
    for key in keys.values():
        st.cache.pop(key, None)
    assert ocsp.warm_cache(rt) >= 1
    with rt.db.read() as db:
        stored = db.get(OcspResponse, (fresh.issuer, fresh.serial)).der
    assert st.cache[keys[fresh.serial]].der == stored
    assert keys[stale.serial] not in st.cache


# -- the quick CertID reader (ca.ocsp.quick_certid) against cryptography's parser ----------------------


def _full_read(data: bytes) -> tuple[bytes, bytes, int] | None:
    """What the full parser makes of ``data``, in the quick reader's terms (None: not that form)."""
    from cryptography.x509 import ocsp as x509_ocsp

    try:
        req = x509_ocsp.load_der_ocsp_request(data)
        if req.hash_algorithm.name != "sha1" or len(req.extensions) or req.serial_number <= 0:
            return None
        return req.issuer_name_hash, req.issuer_key_hash, req.serial_number
    except Exception:  # noqa: BLE001 - unreadable
        return None


def _request(name_hash: bytes, key_hash: bytes, serial: int, *, null_params: bool = True) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp as x509_ocsp

    der = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash, key_hash, serial, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)
    if null_params:
        return der
    # The same request with the AlgorithmIdentifier's parameters absent (RFC 5754 allows both).
    der = der.replace(bytes.fromhex("300906052b0e03021a0500"), bytes.fromhex("300706052b0e03021a"), 1)
    out = bytearray(der)
    for i in (1, 3, 5, 7, 9):
        out[i] -= 2
    return bytes(out)


def test_quick_certid_reads_rfc5019_requests_as_the_full_parser_does() -> None:
    import os
    import random

    rng = random.Random(6960)
    serials = [1, 127, 128, 255, 256, (1 << 159) - 1, 1 << 159, (1 << 160) - 1, *(rng.getrandbits(rng.randint(1, 160)) or 1 for _ in range(300))]
    for serial in serials:
        for null_params in (True, False):
            der = _request(os.urandom(20), os.urandom(20), serial, null_params=null_params)
            assert ocsp.quick_certid(der) == _full_read(der) is not None, (serial, der.hex())


def test_quick_certid_never_accepts_what_the_full_parser_reads_differently() -> None:
    """Random damage to valid requests (bytes changed, cut, added) and other forms (nonce, SHA-256,
    two CertIDs): whenever the quick reader answers, the full parser reads the same CertID."""
    import os
    import random

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp as x509_ocsp

    rng = random.Random(5019)
    nonce = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(os.urandom(20), os.urandom(20), 99, hashes.SHA1()).add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
    sha256 = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(os.urandom(32), os.urandom(32), 99, hashes.SHA256())
    for other in (nonce, sha256):
        assert ocsp.quick_certid(other.build().public_bytes(serialization.Encoding.DER)) is None
    seen = 0
    for _ in range(20_000):
        der = bytearray(_request(os.urandom(20), os.urandom(20), rng.getrandbits(rng.randint(1, 160)) or 1, null_params=rng.random() < 0.5))
        for _ in range(rng.randint(1, 3)):
            kind = rng.random()
            if kind < 0.6 and der:
                der[rng.randrange(len(der))] = rng.choice((0, 1, 2, 0x7F, 0x80, 0xFF, rng.randrange(256)))
            elif kind < 0.8 and der:
                del der[rng.randrange(len(der)) :]
            else:
                der[rng.randrange(len(der) + 1) : 0] = bytes([rng.randrange(256)])
        quick = ocsp.quick_certid(bytes(der))
        if quick is not None:
            seen += 1
            assert quick == _full_read(bytes(der)), bytes(der).hex()
    assert seen > 1000  # the damage often leaves a valid request (a hash byte changed): those were compared


def test_publisher_scans_new_certificates_narrowly_and_looks_back_for_late_ones(rt, subjects) -> None:  # type: ignore[no-untyped-def]
    """The pre-signing scan starts each second just before the previous one (not ten minutes back:
    that re-read every recent certificate each second); once a minute it looks back ten minutes for
    a certificate whose row is older than the watermark (reserved earlier, issued later)."""
    from datetime import timedelta

    from sqlalchemy import delete, update

    from ca import publisher
    from ca.models import Certificate
    from core import clock

    pub = publisher.Publisher(rt)  # not started: its scheduled work, run here
    pub.scheduled_work()
    pub.scheduled_work()
    assert pub._presign_since >= ocsp._iso(clock.now() - timedelta(seconds=30)), pub._presign_since
    with rt.db.transaction() as db:
        late = service.issue_certificate(rt, db, ACTOR, profile="citizen", csr=make_csr(), subject_id=subjects.person_id)
    with rt.db.transaction() as db:
        db.execute(delete(OcspResponse).where(OcspResponse.issuer == late.issuer, OcspResponse.serial == late.serial))
        db.execute(update(Certificate).where(Certificate.serial == late.serial).values(created_at=ocsp._iso(clock.now() - timedelta(minutes=3))))
    pub._last_lookback = 0.0  # a minute has passed
    pub.scheduled_work()
    with rt.db.read() as db:
        assert db.get(OcspResponse, (late.issuer, late.serial)) is not None
    assert pub._presign_since >= ocsp._iso(clock.now() - timedelta(seconds=30))  # and narrow again


def test_full_cache_sheds_its_oldest_tenth_not_everything() -> None:
    st = ocsp.ResponderState(max_entries=1000)
    entry = ocsp.cached_entry(b"\x30\x03\x0a\x01\x00", "2026-12-01T00:00:00+00:00", "2026-12-01T04:00:00+00:00")
    for serial in range(1, 1001):
        st.put(("ca", serial, "sha1"), entry, st.generation)
    assert len(st.cache) == 1000
    st.put(("ca", 1001, "sha1"), entry, st.generation)  # full: the 100 oldest go, the new one stays
    assert len(st.cache) == 901
    assert ("ca", 1, "sha1") not in st.cache and ("ca", 100, "sha1") not in st.cache
    assert ("ca", 101, "sha1") in st.cache and ("ca", 1001, "sha1") in st.cache
    st.put(("ca", 500, "sha1"), entry, st.generation)  # replacing a cached serial evicts nothing
    assert len(st.cache) == 901
    for serial in range(2000, 2500):
        st.put(("ca", serial, "sha1"), entry, st.generation)
    assert len(st.cache) <= 1000  # never above the bound


def test_cache_bound_comes_from_the_settings(rt) -> None:  # type: ignore[no-untyped-def]
    assert rt.settings.ocsp_cache_entries == 1_000_000
    assert ocsp.state(rt).max_entries == rt.settings.ocsp_cache_entries
