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
