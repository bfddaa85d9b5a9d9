"""A private PostgreSQL server for tests that stop and start it (never the shared one on 5432).

``initdb`` and ``pg_ctl`` run as the ``postgres`` OS user in a directory of their own under /tmp,
listening on a free loopback port with its socket in that directory. Stopped and removed on exit.
:func:`private_replica` adds a hot standby streaming from such a primary (``pg_basebackup -R``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for version in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        candidate = version / "bin" / name
        if candidate.exists():
            return str(candidate)
    pytest.fail(f"{name} not found (Debian package postgresql)")


@dataclass
class PrivatePostgres:
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.directory)
        if check and done.returncode != 0:
            log = (self.directory / "log").read_text() if (self.directory / "log").exists() else ""
            raise AssertionError(f"{' '.join(args)} failed: {done.stderr}\n{log[-2000:]}")
        return done

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200"
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.directory / "log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: sessions terminated; ``immediate``: the server process dies like a crash."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


    def query(self, sql: str, database: str = "postgres") -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]


def _private_directory() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="eauth-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(directory, pg.pw_uid, pg.pw_gid)
    os.chmod(directory, 0o700)
    return directory


@contextlib.contextmanager
def private_replica(primary: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """A hot standby of ``primary``: ``pg_basebackup -R -X stream`` (writes ``standby.signal`` and
    ``primary_conninfo``), started on its own port; it replays the primary's WAL as it streams in.
    initdb's trust pg_hba already admits replication connections from 127.0.0.1."""
    directory = _private_directory()
    server = PrivatePostgres(directory, free_port())
    try:
        server._run(_pg_bin("pg_basebackup"), "-D", str(server.data), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                    "-R", "-X", "stream", "--no-sync", "-c", "fast")
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


def wait_replayed(primary: PrivatePostgres, replica: PrivatePostgres, timeout: float = 30) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    import time

    target = primary.query("SELECT pg_current_wal_lsn()")[0][0]
    deadline = time.monotonic() + timeout
    while True:
        caught_up = replica.query(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")[0][0]
        if caught_up:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the replica has not replayed up to {target} after {timeout} s")
        time.sleep(0.05)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    directory = _private_directory()
    server = PrivatePostgres(directory, free_port())
    try:
        server._run(_pg_bin("initdb"), "-D", str(server.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
