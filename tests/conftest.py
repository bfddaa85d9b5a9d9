"""The one declared test platform (pyHanko habit): a real SoftHSM2 token, a real database (SQLite and
PostgreSQL), the real app over real HTTP.

- ``token_pool`` (per test process): one SoftHSM2 token directory with several initialised tokens,
  created *before* the PKCS#11 module is loaded in this process (SoftHSM2 scans its token directory at
  C_Initialize). Each runtime gets its own token label, so CA keys never collide.
- ``backend`` is parametrised ``sqlite`` / ``postgres``: every test that uses the platform runs on
  both. PostgreSQL gets a fresh database per run (dropped afterwards). With ``CI=true`` an unreachable
  PostgreSQL fails the run instead of skipping.
- ``rt``: an initialised platform (``eauth init`` steps) for that backend, shared by the tests of the
  process. ``fresh_rt``: a platform of its own, for tests that break things (audit tampering).
- ``live``: the app served by uvicorn on a free loopback port; ``http``: an httpx client for it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("EAUTH_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
N_TOKENS = 12
TOKEN_PIN = "test-user-pin"
SO_PIN = "test-so-pin"

# EAUTH_* from the developer's shell must not leak into the test platform (unknown keys are errors).
for _key in [k for k in os.environ if k.startswith("EAUTH_") and k != "EAUTH_TEST_PG_ADMIN"]:
    os.environ.pop(_key)
os.environ.pop("EAUTH_TEST_PG_ADMIN", None)


@dataclass
class TokenPool:
    directory: Path
    module: str
    labels: list[str]

    def give_back(self, label: str) -> None:
        self.labels.append(label)

    def take(self) -> str:
        if not self.labels:
            raise RuntimeError("test token pool exhausted; raise N_TOKENS in tests/conftest.py")
        return self.labels.pop(0)


@pytest.fixture(scope="session")
def token_pool(tmp_path_factory: pytest.TempPathFactory) -> TokenPool:
    from hsm.token import default_softhsm_module, ensure_softhsm_token

    module = default_softhsm_module()
    if module is None:
        pytest.fail("SoftHSM2 is not installed (make install installs the softhsm2 package)")
    directory = tmp_path_factory.mktemp("softhsm")
    labels = [f"t{i}" for i in range(N_TOKENS)]
    conf = None
    for label in labels:
        conf = ensure_softhsm_token(directory, label=label, pin=TOKEN_PIN, so_pin=SO_PIN)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return TokenPool(directory, module, labels)


# -- databases -------------------------------------------------------------------------------------


def _pg_reachable() -> bool:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    import psycopg

    if not _pg_reachable():
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} and CI=true: refusing to skip")
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    name = f"eauth_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def database_url(backend: str, home: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{home / 'eauth.db'}"
    else:
        with postgres_database() as url:
            yield url


# -- platforms -------------------------------------------------------------------------------------


def make_settings(home: Path, db_url: str, token_pool: TokenPool, label: str, **extra: object):  # type: ignore[no-untyped-def]
    from core.settings import load_settings

    env = {
        "EAUTH_HOME": str(home),
        "EAUTH_DATABASE_URL": db_url,
        "EAUTH_PKCS11_MODULE": token_pool.module,
        "EAUTH_TOKEN_LABEL": label,
        "EAUTH_TOKEN_PIN": TOKEN_PIN,
        "EAUTH_LOG_FORMAT": "text",
        "EAUTH_AUDIT_CHECKPOINT_EVERY": "50",
    }
    return load_settings(env, **extra)


@contextlib.contextmanager
def platform(backend: str, home: Path, token_pool: TokenPool, *, recycle: bool = False, **extra: object) -> Iterator[object]:
    """An initialised platform on its own token. ``recycle``: wipe the token afterwards and return it
    to the pool (function-scoped platforms)."""
    from eauth.cli.platform import initialise
    from eauth.runtime import build_runtime

    home.mkdir(parents=True, exist_ok=True)
    label = token_pool.take()
    with database_url(backend, home) as url:
        settings = make_settings(home, url, token_pool, label, **extra)
        rt = build_runtime(settings)
        try:
            initialise(rt)
            yield rt
        finally:
            rt.audit.checkpoint(rt.db)
            if recycle:
                rt.token.wipe()
            rt.db.dispose()
            rt.token.close()
            if recycle:
                token_pool.give_back(label)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def rt(backend: str, token_pool: TokenPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The shared initialised platform for ``backend``."""
    home = tmp_path_factory.mktemp(f"home-{backend}")
    # The live server (fixture ``live``) listens on this port, so the URLs baked into certificates
    # (AIA, CDP), the OIDC issuer and QR codes all point at the platform under test.
    with platform(backend, home, token_pool, public_url=f"http://127.0.0.1:{reserve_port()}") as runtime:
        yield runtime


@pytest.fixture
def fresh_rt(backend: str, token_pool: TokenPool, tmp_path: Path) -> Iterator[object]:
    """A platform of its own (its own token and database) for tests that damage state."""
    with platform(backend, tmp_path / "home", token_pool, recycle=True) as runtime:
        yield runtime


@pytest.fixture
def db(rt):  # type: ignore[no-untyped-def]
    """A DB session in a transaction that is rolled back at the end (Warehouse habit)."""
    session = rt.db.sessions()
    session.begin()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


# -- live HTTP -------------------------------------------------------------------------------------


def screenshot_dir() -> Path:
    """Where browser tests put their screenshots: ``docs/screenshots`` only when asked
    (``UPDATE_SCREENSHOTS=1``), so an ordinary test run does not rewrite tracked files."""
    if os.environ.get("UPDATE_SCREENSHOTS"):
        target = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
    else:
        target = Path(os.environ.get("TMPDIR", "/tmp")) / "eauth-screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never one this process handed out before: the kernel may
    give the same ephemeral port to two consecutive probes (a CI run got nginx's two server blocks on
    one port, so the second block was never reached)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


_RESERVED: dict[int, socket.socket] = {}


def reserve_port() -> int:
    """A port held by a listening socket until :func:`serve_app` starts on it. The shared platform's
    URL (baked into certificates' AIA/CDP, the OIDC issuer) names its port long before the live
    server starts; unreserved, another xdist worker could bind it meanwhile, and pdfsig's online OCSP
    fetch would then reach that worker's platform ("Unknown issue with Certificate")."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    _HANDED_OUT.add(port)
    _RESERVED[port] = sock
    return port


@dataclass
class LiveServer:
    url: str
    app: object
    server: object


@contextlib.contextmanager
def serve_app(app: object, port: int | None = None) -> Iterator[LiveServer]:
    import uvicorn

    from eauth.http_protocol import EarlyAnswerProtocol

    port = port or free_port()
    # eauth serve's HTTP protocol (OCSP cache hits answered in the protocol, header deadline)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on", http=EarlyAnswerProtocol)
    server = uvicorn.Server(config)
    reserved = _RESERVED.pop(port, None)  # uvicorn serves on the held socket (and closes it when done)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [reserved]} if reserved else {}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live(rt) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """The whole app over real HTTP on loopback, for the shared platform."""
    from eauth.app import create_app

    from urllib.parse import urlsplit

    with serve_app(create_app(rt), port=urlsplit(rt.settings.public_url).port) as server:
        yield server


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


# -- CLI in a subprocess (its own home, its own SoftHSM2 configuration) -----------------------------


@dataclass
class CliHome:
    home: Path
    env: dict[str, str]

    def run(self, *args: str, input: str | None = None, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "eauth"), *args],
            env={**self.env, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"eauth {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done


@pytest.fixture
def cli_home(tmp_path: Path) -> CliHome:
    """A brand-new ``$EAUTH_HOME`` for the real CLI (``eauth init`` not yet run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EAUTH_", "SOFTHSM2_CONF"))}
    env.update({"EAUTH_HOME": str(tmp_path / "home"), "EAUTH_LOG_FORMAT": "text", "PYTHONPATH": str(ROOT)})
    return CliHome(tmp_path / "home", env)


sys.path.insert(0, str(ROOT))

# Prints how many hostile-input (property/schemathesis) cases ran, summed over xdist workers.
pytest_plugins = ["tests.reliability.tally"]
