"""Platform commands: init, serve, audit verify, backup/restore, vault rotation, settings."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

import admin.bootstrap
import auth_service.bootstrap
import ca.bootstrap
import signing.bootstrap
from core import metrics
from core.db import upgrade
from core.runtime import Runtime
from core.security import Actor
from core.settings import load_settings
from eauth import backup as backup_mod
from eauth.cli import app, emit
from eauth.runtime import build_runtime

audit_app = typer.Typer(no_args_is_help=True, help="Tamper-evident audit log")
vault_app = typer.Typer(no_args_is_help=True, help="PII vault keys")
app.add_typer(audit_app, name="audit")
app.add_typer(vault_app, name="vault")

# Package bootstraps, lowest layer first (the CA must exist before seals and the console).
BOOTSTRAPS = (ca.bootstrap, signing.bootstrap, auth_service.bootstrap, admin.bootstrap)


@contextlib.contextmanager
def runtime(*, create: bool = False) -> Iterator[Runtime]:
    rt = build_runtime(create=create)
    try:
        yield rt
    finally:
        rt.close()


def initialise(rt: Runtime) -> list[str]:
    """Everything `eauth init` does, idempotent: schema, platform keys, then each package."""
    actor = Actor.cli()
    upgrade(rt.db)
    rt.audit.ensure_key()
    rt.vault.ensure_keys()
    lines: list[str] = []
    for module in BOOTSTRAPS:
        lines.extend(module.initialise(rt, actor))
    return lines


@app.command()
def init() -> None:
    """Create the token, schema, platform keys, CA hierarchy and first administrator (idempotent)."""
    with runtime(create=True) as rt:
        lines = initialise(rt)
        emit({"home": str(rt.settings.home.resolve()), "messages": lines}, "\n".join([f"eAuth home: {rt.settings.home.resolve()}", *lines]))


MALLOC_ARENA_MAX = 2


def bound_malloc_arenas() -> None:
    """At most two glibc malloc arenas per server process, unless ``MALLOC_ARENA_MAX`` says otherwise.

    glibc gives threads that allocate at the same moment arenas of their own, up to 8 per core, and
    keeps what is freed in each for that arena. A worker's thread pool (sync routes, HSM calls)
    spreads its short-lived allocations over many arenas, so its resident size creeps up while the
    memory Python holds stays flat: fragmentation, not a leak (``bench/soak_memory.py``, app
    in-process under the soak workload: "free in arenas" 175 → 240 MiB and RSS 398 → 456 MiB in
    150 s with the default; 63–91 MiB and 294–312 MiB, flat, with 2). Workers uvicorn spawns read
    the variable at start; this process (``--workers 1`` serves in it) is set by ``mallopt`` now.
    """
    os.environ.setdefault("MALLOC_ARENA_MAX", str(MALLOC_ARENA_MAX))
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, int(os.environ["MALLOC_ARENA_MAX"]))  # M_ARENA_MAX (malloc.h)
    except (OSError, AttributeError, ValueError):
        pass  # not glibc, or a value mallopt cannot take: the default arenas


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (each with its own HSM sessions)."),
    only: str = typer.Option("", help="Serve only these components, e.g. 'ocsp,crl'."),
) -> None:
    """Serve the platform over HTTP."""
    import uvicorn

    from eauth.http_protocol import EarlyAnswerProtocol

    bound_malloc_arenas()  # before any thread allocates
    if only:
        os.environ["EAUTH_SERVE_ONLY"] = only
    settings = load_settings()
    with runtime() as rt:  # fail fast (token, schema) before forking workers
        from core.db import require_migrated

        require_migrated(rt.db)
    home = settings.home.resolve()
    if workers > 1 and not os.environ.get(metrics.MULTIPROC_ENV):
        # Workers are spawned fresh and inherit this: their samples meet in one directory.
        metrics.prepare_multiprocess_dir(home / "run" / "metrics")
    typer.echo(f"eAuth listening on http://{host}:{port}  (public URL {settings.public_url})", err=True)
    typer.echo(f"  console:      {settings.public_url}/admin", err=True)
    typer.echo(f"  health:       {settings.public_url}/health", err=True)
    credentials = home / "secrets" / "bootstrap-admin.txt"
    if credentials.exists():
        typer.echo(f"  first administrator's one-time credentials: {credentials} (mode 0600)", err=True)
    config = uvicorn.Config(
        "eauth.app:factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        timeout_keep_alive=5,
        server_header=False,  # no "server: uvicorn" banner on every answer (nginx in front sends its own, or none)
        # uvicorn pings each worker every 0.5 s and kills one that has not answered in this many
        # seconds. A spawned worker answers only once it has re-imported this CLI's module, i.e. the
        # whole platform: on a busy host (load 11 on 2 cores) that took longer than uvicorn's 5 s
        # default, so workers were killed and respawned in a loop and the server never came up.
        timeout_worker_healthcheck=60,
        http=EarlyAnswerProtocol,  # OCSP cache hits answered in the protocol; headers within 10 s (slow-loris); bodies: core.web.SlowBodyGuard
    )
    run_server(config)


def run_server(config: Any) -> None:
    """What ``uvicorn.run`` does for one worker or several, with the listening socket bound here so
    that it can be tuned first (:func:`eauth.http_protocol.tune_listener`)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from eauth.http_protocol import tune_listener

    sock = config.bind_socket()
    tune_listener(sock)
    server = uvicorn.Server(config=config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    if config.workers == 1 and not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE: the app did not start


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain and check the HSM-signed checkpoints."""
    with runtime() as rt:
        result = rt.audit.verify(rt.db)
    if result.ok:
        emit(result.as_dict(), f"audit chain OK: {result.entries} entries, {result.checkpoints} checkpoints verified")
        return
    emit(result.as_dict(), f"audit chain BROKEN at entry {result.first_broken_seq}: {result.reason}")
    raise SystemExit(8)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign a checkpoint at the current head now."""
    with runtime() as rt:
        seq = rt.audit.checkpoint(rt.db)
    emit({"seq": seq}, f"checkpoint at entry {seq}")


@vault_app.command("rotate")
def vault_rotate() -> None:
    """Create a new PII data key and re-encrypt every personal field under it."""
    from identity.service import reencrypt_all

    with runtime() as rt, rt.db.transaction() as db:
        key_id = rt.vault.rotate(db)
        count = reencrypt_all(rt, db)
        rt.audit.record(db, actor=Actor.cli(), action="vault.rotate", target=f"vault_key:{key_id}", details={"reencrypted": count})
    emit({"key_id": key_id, "reencrypted": count}, f"new data key {key_id}; {count} fields re-encrypted")


@app.command("settings")
def show_settings() -> None:
    """Show the effective settings (secrets masked)."""
    emit(load_settings().redacted())


@app.command()
def backup(directory: Path = typer.Argument(..., help="Empty or new directory for the backup.")) -> None:
    """Consistent snapshot of database, token directory and configuration, with a signed manifest."""
    with runtime() as rt:
        manifest = backup_mod.create_backup(rt, directory)
    emit(manifest, f"backup written to {directory} ({len(manifest['files'])} files)")


@app.command()
def restore(directory: Path = typer.Argument(..., help="A directory written by `eauth backup`.")) -> None:
    """Restore a backup into an empty $EAUTH_HOME; refuses a tampered backup."""
    settings = load_settings()
    result = backup_mod.restore_backup(settings, directory)
    emit(result, f"restored {result['files']} files into {settings.home.resolve()}; audit chain OK ({result['audit_entries']} entries)")
