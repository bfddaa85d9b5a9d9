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
