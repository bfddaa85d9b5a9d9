"""The database goes away mid-request: clients get 503 problems (never 500), nothing is
half-written, and the platform recovers by itself when the database returns.

PostgreSQL: a private server (tests/reliability/pgprivate.py) killed with ``pg_ctl -m immediate``
under load and started again. SQLite: the file locked by another writer, and made read-only.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import event, select

from core import clock
from core.security import Actor
from tests.conftest import TokenPool, free_port, make_settings, platform, serve_app
from tests.reliability.actors import client_token, make_csr, register_person
from tests.reliability.invariants import audit_violations, certificate_violations
from tests.reliability.pgprivate import private_postgres


@contextlib.contextmanager
def platform_on(url: str, home: Path, token_pool: TokenPool, **extra: object) -> Iterator[Any]:
    """An initialised platform on a database URL of our choosing, served over HTTP (``extra``:
    more settings, e.g. ``database_replica_url``)."""
    from eauth.app import create_app
    from eauth.cli.platform import initialise
    from eauth.runtime import build_runtime

    home.mkdir(parents=True, exist_ok=True)
    label = token_pool.take()
    settings = make_settings(home, url, token_pool, label, public_url=f"http://127.0.0.1:{free_port()}", **extra)
    rt = build_runtime(settings)
    try:
        initialise(rt)
        yield rt
    finally:
        with contextlib.suppress(Exception):
            rt.token.wipe()
        rt.db.dispose()
        rt.token.close()
        token_pool.give_back(label)


def issue_over_http(client: httpx.Client, token: str, person: str) -> httpx.Response:
    return client.post(
        "/api/v1/certificates",
        json={"profile": "citizen", "csr": make_csr(), "subject_id": person},
        headers={"Authorization": f"Bearer {token}"},
    )


def issued_serials(rt: Any) -> set[str]:
    from ca.models import Certificate

    with rt.db.read() as s:
        return set(s.execute(select(Certificate.serial).where(Certificate.status == "issued")).scalars())


def check_problem(r: httpx.Response, *, status: int, codes: set[str]) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] in codes, r.json()


@pytest.mark.slow
def test_postgres_killed_under_load_then_restarted(token_pool: TokenPool, tmp_path: Path) -> None:
    with private_postgres() as pg, platform_on(pg.create_database("eauth"), tmp_path / "home", token_pool) as rt:
        from eauth.app import create_app

        token = client_token(rt, ["certificates:write", "certificates:read"])
        person = register_person(rt)
        before = issued_serials(rt)
        results: list[tuple[int, str, str]] = []  # (status, content type, serial or code)
        stop = threading.Event()
        port = urlsplit(rt.settings.public_url).port

        with serve_app(create_app(rt), port=port) as server:

            def load() -> None:
                with httpx.Client(base_url=server.url, timeout=60) as client:
                    while not stop.is_set():
                        r = issue_over_http(client, token, person)
                        body = r.json()
                        results.append((r.status_code, r.headers.get("content-type", ""), body.get("serial") or body.get("code", "")))

            threads = [threading.Thread(target=load) for _ in range(3)]
            for t in threads:
                t.start()
            with httpx.Client(base_url=server.url, timeout=30) as probe:
                time.sleep(2.0)
                pg.stop("immediate")  # the server process dies; requests in flight lose their connections
                time.sleep(2.0)
                health = probe.get("/health")
                assert health.status_code == 503 and health.json()["checks"]["database"] == {"status": "error", "code": "db.unavailable"}
                outage_end = len(results)
                pg.start()
                deadline = time.time() + 60
                while probe.get("/health").status_code != 200:
                    assert time.time() < deadline, "no automatic recovery"
                    time.sleep(0.2)
                recovered_at = len(results)
                while len(results) < recovered_at + 6:
                    time.sleep(0.2)
            stop.set()
            for t in threads:
                t.join(timeout=120)

        statuses = [s for s, _, _ in results]
        assert 500 not in statuses, [r for r in results if r[0] >= 500 and r[0] != 503][:5]
        assert set(statuses) <= {201, 503}, set(statuses)
        refused = [r for r in results if r[0] == 503]
        assert refused, "the outage was not observed by any request"
        assert all(ct == "application/problem+json" and code.startswith(("db.", "ca.", "auth.")) for _, ct, code in refused), refused[:5]
        assert any(s == 201 for s, _, _ in results[:outage_end]) and all(s == 201 for s, _, _ in results[recovered_at + 3 :])
        # nothing lost: every certificate a client received is recorded, and nothing else was issued
        acknowledged = {serial for s, _, serial in results if s == 201}
        assert issued_serials(rt) - before == acknowledged
        assert certificate_violations(rt, allow_pending=True) == []
        # requests cut between "serial reserved" and "stored" left pending rows: resolved after grace
        from ca.service import resolve_pending

        with clock.skewed(timedelta(minutes=11)), rt.db.transaction() as db:
            resolve_pending(rt, db, Actor.system("test"))
        assert certificate_violations(rt, allow_pending=False) == []
        assert audit_violations(rt) == []


@contextlib.contextmanager
def sqlite_platform(token_pool: TokenPool, home: Path, busy_ms: int = 300) -> Iterator[Any]:
    with platform("sqlite", home, token_pool, recycle=True, public_url=f"http://127.0.0.1:{free_port()}") as rt:
        # The platform waits 30 s for a busy database; a test need not.
        @event.listens_for(rt.db.engine, "connect")
        def _short_busy(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute(f"PRAGMA busy_timeout={busy_ms}")

        rt.db.engine.dispose()
        yield rt


def test_sqlite_locked_by_another_writer(token_pool: TokenPool, tmp_path: Path) -> None:
    from eauth.app import create_app

    with sqlite_platform(token_pool, tmp_path / "home") as rt:
        token = client_token(rt, ["certificates:write", "certificates:read"])
        person = register_person(rt)
        with serve_app(create_app(rt), port=urlsplit(rt.settings.public_url).port) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            assert issue_over_http(client, token, person).status_code == 201
            before = issued_serials(rt)
            locker = sqlite3.connect(str(tmp_path / "home" / "eauth.db"), isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")  # a backup tool, a stuck migration, an operator's shell
            try:
                r = issue_over_http(client, token, person)
                check_problem(r, status=503, codes={"db.locked"})
                assert r.headers["retry-after"]
                # readers are not blocked by a writer in WAL mode
                assert client.get("/health").status_code == 200
                assert client.get("/api/v1/ca", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            assert issued_serials(rt) == before
            assert issue_over_http(client, token, person).status_code == 201
        assert certificate_violations(rt) == [] and audit_violations(rt) == []


def test_sqlite_file_turns_read_only(token_pool: TokenPool, tmp_path: Path) -> None:
    """The database file becomes read-only (as after a disk is remounted ro): writes are 503
    ``db.readonly`` with nothing written, reads go on, and writes resume by themselves after."""
    from eauth.app import create_app

    db_file = tmp_path / "home" / "eauth.db"
    with sqlite_platform(token_pool, tmp_path / "home") as rt:
        token = client_token(rt, ["certificates:write", "certificates:read"])
        person = register_person(rt)
        with serve_app(create_app(rt), port=urlsplit(rt.settings.public_url).port) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            assert issue_over_http(client, token, person).status_code == 201
            before = issued_serials(rt)
            # root ignores permission bits; the immutable attribute binds root too
            subprocess.run(["chattr", "+i", str(db_file)], check=True)
            try:
                rt.db.engine.dispose()  # connections opened from now on see the read-only file
                for _ in range(3):
                    check_problem(issue_over_http(client, token, person), status=503, codes={"db.readonly"})
                assert client.get("/health").status_code == 200
            finally:
                subprocess.run(["chattr", "-i", str(db_file)], check=True)
            assert issued_serials(rt) == before
            # no restart, no pool reset: the read-only connections were dropped when they failed
            assert issue_over_http(client, token, person).status_code == 201
        assert certificate_violations(rt) == [] and audit_violations(rt) == []
