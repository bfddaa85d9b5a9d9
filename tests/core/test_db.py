from __future__ import annotations

from pathlib import Path

import pytest

from core.db import Database, pending_heads, require_migrated, upgrade
from core.errors import Kind, Problem


def test_unmigrated_database_is_refused_then_upgrade_fixes_it(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'new.db'}")
    with pytest.raises(Problem) as info:
        require_migrated(db)
    assert info.value.kind is Kind.UNAVAILABLE and info.value.code == "db.not_migrated"
    upgrade(db)
    assert pending_heads(db) == set()
    require_migrated(db)
    db.dispose()


def test_app_refuses_to_start_on_unmigrated_database(rt, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from eauth.app import create_app

    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(Problem) as info:
        create_app(replace(rt, db=empty))
    assert info.value.code == "db.not_migrated"
    empty.dispose()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    from sqlalchemy import text

    db = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    db.dispose()


def test_unreachable_database_is_a_503_problem() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    with pytest.raises(Problem) as info:
        db.ping()
    assert info.value.kind is Kind.UNAVAILABLE and info.value.status == 503
    db.dispose()


def test_postgres_connection_pinged_only_after_idle_and_replaced_when_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pooled PostgreSQL connections are pinged when they sat idle (a server restart or a dropped
    connection is then healed by a fresh one, invisibly), not at every checkout (a round trip each)."""
    import time

    import psycopg
    from sqlalchemy import event, text

    import core.db
    from tests.conftest import PG_ADMIN_URL, postgres_database

    with postgres_database() as url:
        db = Database(url, pool_size=1)
        pings: list[int] = []
        real_ping = db.engine.dialect.do_ping
        monkeypatch.setattr(db.engine.dialect, "do_ping", lambda conn: pings.append(1) or real_ping(conn))
        opened: list[int] = []
        event.listen(db.engine, "connect", lambda *_: opened.append(1))

        def backend_pid() -> int:
            with db.read() as s:
                return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())

        first = backend_pid()
        for _ in range(5):  # busy: the same connection, no ping
            assert backend_pid() == first
        assert pings == [] and len(opened) == 1
        # the server ends the connection while it sits in the pool (a restart, an idle time-out)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        monkeypatch.setattr(core.db, "PING_AFTER_IDLE_SECONDS", 0.05)
        time.sleep(0.1)
        second = backend_pid()  # pinged (idle), found dead, replaced: no error reaches the caller
        assert second != first and pings == [1] and len(opened) == 2
        db.dispose()
