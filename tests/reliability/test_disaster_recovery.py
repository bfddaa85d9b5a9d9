"""Disaster-recovery drill with the real CLI and server: back up while certificates are being
issued over HTTP, destroy the home, restore it, verify the audit chain, then issue and revoke again.

What it proves: the backup is a consistent snapshot taken while serving (every certificate
acknowledged before the backup began is in it, each with its audit entry, and the chain verifies),
and after the restore the platform carries on — no serial from before the disaster is reused, even
those issued after the snapshot and therefore lost with the home (the recovery point).
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, CliHome, free_port
from tests.factories import unique_id_number
from tests.reliability.actors import make_csr

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _serve(cli_home: CliHome, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "eauth"), "serve", "--port", str(port)],
        env={**cli_home.env, "EAUTH_PUBLIC_URL": f"http://127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"eauth serve did not come up: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        time.sleep(0.2)


def _rows(db_file: Path) -> dict[str, tuple[str, bool]]:
    """serial → (status, has an issuance audit entry), read straight from the SQLite file."""
    con = sqlite3.connect(db_file)
    try:
        audited = {t for (t,) in con.execute("SELECT target FROM audit_entries WHERE action = 'ca.certificate.issue' AND outcome = 'success'")}
        return {s: (st, f"certificate:{s}" in audited) for s, st in con.execute("SELECT serial, status FROM ca_certificates")}
    finally:
        con.close()


def test_backup_while_serving_destroy_restore_then_issue_and_revoke(cli_home: CliHome, tmp_path: Path) -> None:
    cli_home.run("init")
    person = json.loads(cli_home.run("--json", "person", "add", "--name", "赵六", "--id-number", unique_id_number()).stdout)["id"]
    client = json.loads(
        cli_home.run("--json", "client", "add", "--name", "灾备演练", "--grant", "client_credentials", "--scope", "certificates:write", "--scope", "certificates:read").stdout
    )
    port = free_port()
    server = _serve(cli_home, port)
    acknowledged: list[tuple[float, str]] = []
    errors: list[str] = []
    stop = threading.Event()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            tok = http.post("/oidc/token", data={"grant_type": "client_credentials", "scope": "certificates:write certificates:read"}, auth=(client["client_id"], client["client_secret"]))
            assert tok.status_code == 200, tok.text
            token = tok.json()["access_token"]

            def issue_loop() -> None:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                    while not stop.is_set():
                        r = c.post("/api/v1/certificates", json={"profile": "citizen", "csr": make_csr(), "subject_id": person}, headers={"Authorization": f"Bearer {token}"})
                        if r.status_code == 201:
                            acknowledged.append((time.monotonic(), r.json()["serial"]))
                        else:
                            errors.append(f"{r.status_code} {r.text[:200]}")

            loader = threading.Thread(target=issue_loop)
            loader.start()
            time.sleep(1.5)
            backup_started = time.monotonic()
            cli_home.run("backup", str(tmp_path / "bk"))  # the server keeps issuing meanwhile
            time.sleep(1.0)
            stop.set()
            loader.join(timeout=60)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert errors == [], errors[:3]
    before_backup = {s for t, s in acknowledged if t < backup_started}
    everything = {s for _, s in acknowledged}
    assert before_backup and everything - before_backup, "the drill needs issuance before and during/after the backup"

    # The disaster: the whole home is gone.
    shutil.rmtree(cli_home.home)
    done = cli_home.run("restore", str(tmp_path / "bk"))
    assert "audit chain OK" in done.stdout
    assert json.loads(cli_home.run("--json", "audit", "verify").stdout)["ok"]

    restored = _rows(cli_home.home / "eauth.db")
    missing = before_backup - set(restored)
    assert not missing, f"acknowledged before the backup began, yet not in it: {sorted(missing)[:5]}"
    # A consistent snapshot: no issued certificate without its audit entry.
    assert all(audited for status, audited in restored.values() if status == "issued")

    # The platform carries on: issue, revoke, publish — and no serial from before the disaster reappears.
    csr = tmp_path / "after.csr"
    csr.write_text(make_csr())
    new_serials = set()
    for _ in range(5):
        shown = json.loads(cli_home.run("--json", "cert", "issue", "--profile", "citizen", "--csr", str(csr), "--subject-id", person).stdout)
        new_serials.add(shown["serial"])
    assert len(new_serials) == 5 and not (new_serials & (everything | set(restored)))
    victim = sorted(new_serials)[0]
    cli_home.run("cert", "revoke", victim, "--reason", "keyCompromise")
    assert json.loads(cli_home.run("--json", "cert", "show", victim).stdout)["status"] == "revoked"
    cli_home.run("crl", "publish")
    assert json.loads(cli_home.run("--json", "audit", "verify").stdout)["ok"]
