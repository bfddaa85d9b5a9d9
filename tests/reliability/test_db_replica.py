"""Read replica: ``EAUTH_DATABASE_REPLICA_URL`` sends the lag-tolerant read paths to a streaming
replica, writes and every other read to the primary, and a replica that goes away is skipped.

The slow test runs a real private PostgreSQL primary and a hot standby streaming from it
(tests/reliability/pgprivate.py: initdb / pg_basebackup / pg_ctl as the ``postgres`` user, never
the shared server on 5432). The proof that reads are served by the replica: with the *primary*
stopped, the public read paths still answer (from the replica) while a write is a 503; with the
*replica* stopped, the same reads answer from the primary.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from core import metrics
from core.db import Database
from core.security import Actor
from tests.conftest import TokenPool, free_port, serve_app
from tests.factories import unique_uscc
from tests.reliability.actors import client_token, make_csr, register_person
from tests.reliability.pgprivate import private_postgres, private_replica, wait_replayed
from tests.reliability.test_db_faults import platform_on

LICENCE = Path(__file__).resolve().parent.parent / "data" / "signing" / "licence.pdf"


def fallbacks() -> float:
    return metrics.DB_REPLICA_FALLBACKS._value.get()


def test_unreachable_replica_falls_back_to_the_primary(tmp_path: Path) -> None:
    """Nothing listens at the replica's address: replica reads are served by the primary, the
    failure is counted, and for REPLICA_RETRY seconds the replica is not even tried."""
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/eauth"
    db = Database(f"sqlite:///{tmp_path}/primary.db", replica_url=dead)
    try:
        with db.transaction() as s:
            s.execute(text("CREATE TABLE marker (v TEXT)"))
            s.execute(text("INSERT INTO marker VALUES ('primary')"))
        before = fallbacks()
        with db.replica_read() as s:
            assert s.execute(text("SELECT v FROM marker")).scalar_one() == "primary"
        assert fallbacks() == before + 1
        down_until = db._replica_down_until
        assert down_until > time.monotonic()
        with db.replica_read() as s:  # within the retry pause: straight to the primary
            assert s.execute(text("SELECT v FROM marker")).scalar_one() == "primary"
        assert fallbacks() == before + 2
        assert db._replica_down_until == down_until, "the replica was tried again inside the retry pause"
    finally:
        db.dispose()


def test_without_a_replica_replica_reads_are_primary_reads(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/only.db")
    try:
        before = fallbacks()
        with db.replica_read() as s:
            assert s.execute(text("SELECT 1")).scalar_one() == 1
        assert db.replica_engine is None and fallbacks() == before  # no replica is not a fallback
    finally:
        db.dispose()


def _replica_sessions(replica) -> int:  # type: ignore[no-untyped-def]
    return int(replica.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'eauth-replica-read' AND datname = 'eauth'")[0][0])


@pytest.mark.slow
def test_streaming_replica_serves_reads_and_losing_it_falls_back(token_pool: TokenPool, tmp_path: Path) -> None:
    with private_postgres() as primary:
        url = primary.create_database("eauth")
        with private_replica(primary) as replica, platform_on(url, tmp_path / "home", token_pool, database_replica_url=replica.url("eauth")) as rt:
            from eauth.app import create_app
            from identity import service as identity
            from signing import pades
            from signing import service as signing_service

            # Sessions land where they should: replica_read on the standby, everything else on the primary.
            with rt.db.replica_read() as s:
                assert s.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True
            with rt.db.read() as s:
                assert s.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is False
            with rt.db.transaction() as s:
                assert s.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is False

            # Writes go to the primary and reach the replica by streaming.
            with rt.db.transaction() as db:
                dept = identity.register_org(rt, db, Actor.cli(), name="海口市行政审批服务局", uscc=unique_uscc(), type="government")
            with rt.db.transaction() as db:
                seal = signing_service.create_seal(rt, db, Actor.cli(), name="行政审批专用章", department=dept.id)
            with rt.db.transaction() as db:
                sealed = signing_service.seal_pdf(rt, db, Actor.cli(), seal_id=seal.id, pdf=LICENCE.read_bytes(), options=pades.PadesOptions(level="B-B"))
            document_id = sealed.document.id
            token = client_token(rt, ["certificates:write", "certificates:read"])
            person = register_person(rt)
            wait_replayed(primary, replica)

            port = urlsplit(rt.settings.public_url).port
            with serve_app(create_app(rt), port=port) as server, httpx.Client(base_url=server.url, timeout=30) as http:

                def reads_answer() -> None:
                    page = http.get(f"/verify/{document_id}")  # the sealed-document register (QR link page)
                    assert page.status_code == 200 and "行政审批专用章" in page.text, (page.status_code, page.text[:300])
                    pem = http.get("/ca/public-service.pem")
                    assert pem.status_code == 200 and pem.text.startswith("-----BEGIN CERTIFICATE-----")
                    report = signing_service.verify_document(rt, sealed.pdf)
                    assert report.document.registered_id == document_id, report.document

                reads_answer()
                assert _replica_sessions(replica) >= 1, "no session of ours on the replica"

                # 1. The primary dies: the replica alone answers the read paths; a write is a 503 problem.
                primary.stop("immediate")
                try:
                    signing_service._state(rt).trust = None  # no cached trust setup: verification reads again
                    reads_answer()
                    r = http.post("/api/v1/certificates", json={"profile": "citizen", "csr": make_csr(), "subject_id": person},
                                  headers={"Authorization": f"Bearer {token}"})
                    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json", (r.status_code, r.text[:300])
                finally:
                    primary.start()

                # 2. The replica dies: the same reads fall back to the primary, and are counted.
                before = fallbacks()
                replica.stop("immediate")
                try:
                    signing_service._state(rt).trust = None
                    reads_answer()
                    assert fallbacks() > before
                    assert 'eauth_db_replica_fallbacks_total' in http.get("/metrics").text
                    issued = http.post("/api/v1/certificates", json={"profile": "citizen", "csr": make_csr(), "subject_id": person},
                                       headers={"Authorization": f"Bearer {token}"})
                    assert issued.status_code == 201, issued.text[:300]
                finally:
                    replica.start()

                # 3. The replica returns: after the retry pause, reads go back to it by themselves.
                wait_replayed(primary, replica)
                rt.db._replica_down_until = 0.0  # skip the remaining pause rather than sleep through it
                before = fallbacks()
                with rt.db.replica_read() as s:
                    assert s.execute(text("SELECT pg_is_in_recovery()")).scalar_one() is True
                reads_answer()
                assert fallbacks() == before
                scrape = {s.name for f in text_string_to_metric_families(http.get("/metrics").text) for s in f.samples}
                assert "eauth_db_replica_fallbacks_total" in scrape
