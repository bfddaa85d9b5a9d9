"""Database: SQLAlchemy 2 engine and sessions, SQLite (WAL) or PostgreSQL (psycopg 3), Alembic.

Each package owns its tables (``<pkg>/models.py``) and its migrations (``<pkg>/migrations/``, an
Alembic branch labelled with the package name). ``upgrade`` applies every branch to ``heads``; the
app refuses to start while any head is missing (``require_migrated``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from core import metrics
from core.errors import Kind, Problem

log = logging.getLogger("eauth.db")

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Packages whose migrations form the schema, lowest layer first.
MIGRATION_PACKAGES = ("core", "identity", "ca", "signing", "auth_service", "admin")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str, *, pool_size: int = 10, connect_args: dict[str, Any] | None = None) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=pool_size, max_overflow=20)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=20, connect_args=connect_args or {})
    _ping_when_idle(engine)
    return engine


# A pooled connection that sat unused this long is pinged before use (the server may have restarted
# or a firewall dropped it meanwhile). SQLAlchemy's pool_pre_ping pings at *every* checkout: a
# round trip plus server work on each transaction — a third of the statements of a sign-in's
# authorization request. A connection returned moments ago was just working; if the server dies
# under traffic, the first statement that fails invalidates the whole pool (SQLAlchemy's disconnect
# handling) and every other connection is replaced at its next checkout, as before.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["eauth_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("eauth_idle_since")
        if since is not None and time.monotonic() - since > PING_AFTER_IDLE_SECONDS:
            try:
                alive = engine.dialect._do_ping_w_event(dbapi_conn)
            except Exception as exc:  # noqa: BLE001 - any failed ping: let the pool open a new connection
                raise DisconnectionError(f"ping failed: {exc}") from exc
            if not alive:
                raise DisconnectionError("ping failed")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, emit BEGIN (pysqlite's implicit transactions break
        # BEGIN IMMEDIATE below).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    # A connection opened while the file was read-only (disk remounted ro, permissions) stays
    # read-only for its whole life. Note it at connect; at checkout, once the file is writable
    # again, have the pool replace it — so writes recover by themselves, without a restart.
    path = engine.url.database or ""

    def _writable() -> bool:
        return not path or path == ":memory:" or not os.path.exists(path) or os.access(path, os.W_OK)

    @event.listens_for(engine, "connect")
    def _note_readonly(_dbapi_conn: Any, record: Any) -> None:
        record.info["eauth_opened_readonly"] = not _writable()

    @event.listens_for(engine, "checkout")
    def _replace_readonly(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("eauth_opened_readonly") and _writable():
            raise DisconnectionError("the database file is writable again")

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        if "readonly database" in str(context.original_exception):
            context.is_disconnect = True  # drop that connection rather than keep failing on it

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Write transactions take the write lock up front: a deferred transaction that reads and
        # then writes can fail with SQLITE_BUSY without waiting (the audit chain reads its head
        # first). Read-only sessions stay deferred so WAL readers never wait for a writer.
        if conn.get_execution_options().get("eauth_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine and its session factory. ``transaction()`` is the unit of work.

    **Read replica.** With ``replica_url`` (``EAUTH_DATABASE_REPLICA_URL``: a PostgreSQL streaming
    replica of the primary), :meth:`replica_read` sessions go to the replica. Only read paths that
    tolerate the replication lag use it (document verification, CA certificate and CRL downloads,
    JWKS, public listings); writes, :meth:`read` and every read-your-writes flow (login sessions,
    authorization codes, token introspection, the OCSP cache and its change sequence) stay on the
    primary. A replica that cannot be reached is skipped for ``REPLICA_RETRY`` seconds and its
    reads go to the primary meanwhile (``eauth_db_replica_fallbacks_total``).
    """

    REPLICA_RETRY = 5.0  # seconds a failed replica is left alone before it is tried again

    def __init__(self, url: str, *, pool_size: int = 10, replica_url: str | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(self.engine.execution_options(eauth_readonly=True), expire_on_commit=False)
        self.replica_url = replica_url
        self.replica_engine: Engine | None = None
        if replica_url:
            # application_name marks our sessions in the replica's pg_stat_activity; a short connect
            # timeout so an unreachable replica costs seconds once, not a hung request each time.
            args = {"application_name": "eauth-replica-read", "connect_timeout": 3} if not replica_url.startswith("sqlite") else None
            self.replica_engine = make_engine(replica_url, pool_size=pool_size, connect_args=args)
        self._replica_down_until = 0.0

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any exception.

        A use case may ``session.commit()`` at an intermediate point it must make durable before a
        side effect (certificate issuance commits the reserved serial before the HSM signs, as
        Boulder does); work after that point is again committed or rolled back here.
        """
        with translate_db_errors(), self.sessions() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise
            session.commit()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads (no commit)."""
        with translate_db_errors(), self.read_sessions() as session:
            yield session

    @contextlib.contextmanager
    def replica_read(self) -> Iterator[Session]:
        """A read session on the replica when one is configured and reachable, else on the primary.

        The answer may lag the primary by the replication delay: use it only where that is correct
        (see the class docstring). A replica failing mid-read is a 503 for that request and is
        skipped for ``REPLICA_RETRY`` seconds, so the next ones go to the primary.
        """
        conn = self._replica_connection()
        if conn is None:
            with self.read() as session:
                yield session
            return
        with translate_db_errors(), conn, Session(bind=conn, expire_on_commit=False) as session:
            try:
                yield session
            except OperationalError:
                self._replica_failed("a read failed on the replica")
                raise

    def _replica_connection(self) -> Any:
        if self.replica_engine is None or time.monotonic() < self._replica_down_until:
            if self.replica_engine is not None:
                metrics.count_replica_fallback()
            return None
        # A ping per replica read (one round trip; the paths that use the replica take far longer):
        # a replica that died since this connection was last used is found here, where the read can
        # still go to the primary, not by the read itself (a 503). The failed ping invalidates the
        # pool, so the second attempt opens a fresh connection — or finds the replica down.
        for attempt in (1, 2):
            try:
                conn = self.replica_engine.connect()
            except OperationalError as exc:
                self._replica_failed(str(exc.orig or exc).strip().splitlines()[0][:200])
                metrics.count_replica_fallback()
                return None
            try:
                conn.exec_driver_sql("SELECT 1")
                conn.rollback()
                return conn
            except DBAPIError as exc:
                conn.invalidate()
                conn.close()
                if attempt == 2:
                    self._replica_failed(str(exc.orig or exc).strip().splitlines()[0][:200])
                    metrics.count_replica_fallback()
        return None

    def _replica_failed(self, why: str) -> None:
        if time.monotonic() >= self._replica_down_until:
            log.warning("read replica unavailable (%s): reads go to the primary for %.0f s", why, self.REPLICA_RETRY)
        self._replica_down_until = time.monotonic() + self.REPLICA_RETRY

    def ping(self) -> None:
        # A read: on SQLite it must not queue for the write lock (a long writer is not an outage).
        with translate_db_errors(), self.engine.execution_options(eauth_readonly=True).connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if self.replica_engine is not None:
            self.replica_engine.dispose()


@contextlib.contextmanager
def translate_db_errors() -> Iterator[None]:
    """A database that cannot be reached becomes a 503 problem, not a traceback; a value it refuses, a 400."""
    try:
        yield
    except OperationalError as exc:
        message = str(exc.orig) if exc.orig is not None else str(exc)
        if "readonly" in message or "read-only" in message:
            code, detail = "db.readonly", "the database is read-only"
        elif "locked" in message:
            code, detail = "db.locked", "the database is busy; retry"
        else:
            code, detail = "db.unavailable", "the database is unavailable"
        metrics.count_db_error(code)
        raise Problem(Kind.UNAVAILABLE, code, detail, headers={"Retry-After": "2"}) from exc
    except DataError as exc:
        # The database refused a value the caller sent (PostgreSQL: a NUL character in a text
        # parameter, a number out of range): the request is at fault, not the service.
        raise Problem(Kind.INVALID_INPUT, "db.invalid_value", "the request carries a value that cannot be stored or searched (e.g. a NUL character)") from exc


# -- migrations ---------------------------------------------------------------------------------


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    locations = []
    for pkg in MIGRATION_PACKAGES:
        spec = importlib.util.find_spec(pkg)
        if spec is None or spec.submodule_search_locations is None:
            continue
        for root in spec.submodule_search_locations:
            versions = Path(root) / "migrations" / "versions"
            if versions.is_dir():
                locations.append(str(versions))
    cfg.set_main_option("version_locations", " ".join(locations))
    cfg.set_main_option("path_separator", "space")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: Database) -> None:
    """Apply every package's migrations (all branch heads)."""
    from alembic import command

    cfg = _alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def pending_heads(db: Database) -> set[str]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(db.url))
    with translate_db_errors(), db.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    wanted = set(script.get_heads())
    # alembic_version keeps only the tips; a head reached through ``depends_on`` counts as applied.
    applied = {rev.revision for rev in script.revision_map.iterate_revisions(tuple(current), "base")} if current else set()
    return wanted - applied


def require_migrated(db: Database) -> None:
    missing = pending_heads(db)
    if missing:
        raise Problem(
            Kind.UNAVAILABLE,
            "db.not_migrated",
            f"the database schema is not up to date (missing {', '.join(sorted(missing))}); run `eauth init`",
        )
