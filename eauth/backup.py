"""Backup and restore of an eAuth home: database, token directory, configuration and secrets.

- SQLite: the online backup API gives a consistent snapshot while the platform serves.
- PostgreSQL: ``pg_dump --format=custom`` (a consistent snapshot by MVCC); restored with
  ``pg_restore`` into the database named by ``EAUTH_DATABASE_URL``.
- The manifest lists the SHA-256 of every file and is signed by the audit key in the token; restore
  refuses a backup whose files or manifest do not match, then verifies the audit chain.

A real HSM deployment backs up the HSM through the vendor's own key-backup mechanism (wrapped under a
backup key held by the HSM cluster); the ``softhsm/`` directory here stands in for that.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from datetime import UTC
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import make_url

from core import clock
from core.audit import AUDIT_KEY_LABEL
from core.errors import Kind, Problem
from core.runtime import Runtime
from core.settings import Settings

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    u = make_url(url)
    args = ["-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres", "-d", u.database or "postgres"]
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    return args, env


def create_backup(rt: Runtime, directory: Path) -> dict[str, Any]:
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise Problem(Kind.CONFLICT, "backup.not_empty", f"{directory} is not empty")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    home = rt.settings.home
    # 1. database snapshot
    if rt.db.dialect == "sqlite":
        db_path = Path(make_url(rt.db.url).database or "")
        src = sqlite3.connect(str(db_path))
        dst = sqlite3.connect(str(directory / "eauth.db"))
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        db_kind = "sqlite"
    else:
        args, env = _pg_args(rt.db.url)
        done = subprocess.run(["pg_dump", "--format=custom", "--no-owner", "-f", str(directory / "eauth.pgdump"), *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise Problem(Kind.UNAVAILABLE, "backup.pg_dump_failed", f"pg_dump failed: {done.stderr.strip()[:300]}")
        db_kind = "postgresql"
    # 2. token directory, configuration, secrets
    for sub in ("softhsm", "secrets"):
        if (home / sub).exists():
            shutil.copytree(home / sub, directory / sub)
    if (home / "eauth.toml").exists():
        shutil.copy2(home / "eauth.toml", directory / "eauth.toml")
    files = {
        str(p.relative_to(directory)): _sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST, SIGNATURE)
    }
    manifest = {"format": "eauth-backup/1", "created_at": clock.now().astimezone(UTC).isoformat(), "database": db_kind, "files": files}
    body = json.dumps(manifest, sort_keys=True, indent=2).encode()
    (directory / MANIFEST).write_bytes(body)
    key = rt.token.key(AUDIT_KEY_LABEL)
    (directory / SIGNATURE).write_bytes(key.sign(body, ec.ECDSA(hashes.SHA256())))
    with rt.db.transaction() as session:
        rt.audit.record(session, actor="cli:local-admin", action="platform.backup", target=str(directory), details={"files": len(files), "database": db_kind})
    return manifest


def verify_backup_files(directory: Path) -> dict[str, Any]:
    """Check every file against the manifest; refuse extra, missing or altered files."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise Problem(Kind.INVALID_INPUT, "backup.no_manifest", f"{directory} has no readable manifest") from exc
    present = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() and p.name not in (MANIFEST, SIGNATURE)}
    listed = set(manifest.get("files", {}))
    if present != listed:
        diff = sorted(present ^ listed)
        raise Problem(Kind.INVALID_INPUT, "backup.tampered", f"backup files do not match the manifest: {', '.join(diff[:5])}")
    for name, digest in manifest["files"].items():
        if _sha256(directory / name) != digest:
            raise Problem(Kind.INVALID_INPUT, "backup.tampered", f"backup file {name} does not match its hash")
    return manifest


def restore_backup(settings: Settings, directory: Path) -> dict[str, Any]:
    from core.db import require_migrated
    from eauth.runtime import build_runtime

    directory = Path(directory)
    manifest = verify_backup_files(directory)
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    if any(home.joinpath(p).exists() for p in ("eauth.db", "softhsm", "secrets")):
        raise Problem(Kind.CONFLICT, "restore.home_not_empty", f"{home} already holds an eAuth installation; restore into an empty home")
    for sub in ("softhsm", "secrets"):
        if (directory / sub).exists():
            shutil.copytree(directory / sub, home / sub)
            os.chmod(home / sub, 0o700)
    # The SoftHSM2 configuration names the token directory by absolute path: point it at the new home.
    conf = home / "softhsm" / "softhsm2.conf"
    if conf.exists():
        lines = [
            f"directories.tokendir = {(home / 'softhsm' / 'tokens').resolve()}" if line.startswith("directories.tokendir") else line
            for line in conf.read_text().splitlines()
        ]
        conf.write_text("\n".join(lines) + "\n")
    if (directory / "eauth.toml").exists():
        shutil.copy2(directory / "eauth.toml", home / "eauth.toml")
    if manifest["database"] == "sqlite":
        if settings.database_url and not settings.database_url.startswith("sqlite"):
            raise Problem(Kind.CONFLICT, "restore.database_mismatch", "the backup holds a SQLite database but EAUTH_DATABASE_URL names another")
        target = Path(make_url(settings.db_url).database or "")
        shutil.copy2(directory / "eauth.db", target)
    else:
        args, env = _pg_args(settings.db_url)
        done = subprocess.run(
            ["pg_restore", "--no-owner", "--clean", "--if-exists", *args, str(directory / "eauth.pgdump")], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise Problem(Kind.UNAVAILABLE, "restore.pg_restore_failed", f"pg_restore failed: {done.stderr.strip()[:300]}")
    rt = build_runtime(settings)
    try:
        public = rt.token.key(AUDIT_KEY_LABEL).public_key()
        try:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify((directory / SIGNATURE).read_bytes(), (directory / MANIFEST).read_bytes(), ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, OSError) as exc:
            raise Problem(Kind.INVALID_INPUT, "backup.bad_signature", "the backup manifest signature does not verify") from exc
        require_migrated(rt.db)
        result = rt.audit.verify(rt.db)
        if not result.ok:
            raise Problem(Kind.CONFLICT, "restore.audit_broken", f"restored audit chain is broken at entry {result.first_broken_seq}: {result.reason}")
        with rt.db.transaction() as session:
            rt.audit.record(session, actor="cli:local-admin", action="platform.restore", target=str(directory), details={"files": len(manifest["files"])})
    finally:
        rt.close()
    return {"files": len(manifest["files"]), "audit_entries": result.entries + 1}
