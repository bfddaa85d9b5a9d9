"""SIGKILL at random points while certificates are issued and revoked and PDFs sealed.

A worker process (``crash_worker.py``) runs the platform's own service functions in a loop; the
test kills it with SIGKILL after a random delay, restarts it (which runs the server's start-up
recovery), and repeats until 1,000 operations were acknowledged. Then, against the database and the
token: no certificate without its record, no record without its audit entry, no serial twice, every
acknowledged operation stored, every ``pending`` row resolved, ``audit verify`` passes, and the
OCSP responses and the CRL say what the database says.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp as x509_ocsp
from sqlalchemy import select

from core import clock
from core.security import Actor
from tests.conftest import ROOT, TOKEN_PIN, TokenPool, free_port, platform
from tests.reliability.actors import register_person
from tests.reliability.invariants import audit_violations, certificate_violations

TARGET_OPERATIONS = 1000
TIME_LIMIT = 1200.0


def _worker_env(rt) -> dict[str, str]:  # type: ignore[no-untyped-def]
    s = rt.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAUTH_")}
    env.update(
        {
            "EAUTH_HOME": str(s.home),
            "EAUTH_DATABASE_URL": s.database_url or "",
            "EAUTH_PUBLIC_URL": s.public_url,
            "EAUTH_PKCS11_MODULE": s.pkcs11_module or "",
            "EAUTH_TOKEN_LABEL": s.token_label,
            "EAUTH_TOKEN_PIN": TOKEN_PIN,
            "EAUTH_LOG_FORMAT": "text",
            "EAUTH_LOG_LEVEL": "WARNING",
            "EAUTH_AUDIT_CHECKPOINT_EVERY": "50",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


class Run:
    """One worker process and the lines it acknowledged."""

    def __init__(self, env: dict[str, str], person: str, seal: str, seed: int) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.crash_worker", person, seal, str(seed)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line == "ready":
                self.ready.set()
            elif line:
                self.lines.append(line)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_sigkill_during_issuance_revocation_and_sealing_loses_nothing(backend: str, token_pool: TokenPool, tmp_path: Path) -> None:
    from ca import crl, ocsp
    from ca.models import Certificate
    from ca.service import resolve_pending
    from core.audit import AuditEntry
    from identity import service as identity
    from signing import service as signing_service
    from signing.models import SealedDocument
    from tests.factories import unique_uscc

    with platform(backend, tmp_path / "home", token_pool, recycle=True, public_url=f"http://127.0.0.1:{free_port()}") as rt:
        person = register_person(rt)
        with rt.db.transaction() as db:
            dept = identity.register_org(rt, db, Actor.cli(), name="海口市行政审批服务局", uscc=unique_uscc(), type="government")
        with rt.db.transaction() as db:
            seal = signing_service.create_seal(rt, db, Actor.cli(), name="行政审批专用章", department=dept.id)
        env = _worker_env(rt)
        rng = random.Random(20261201)
        acknowledged: list[str] = []
        kills = 0
        started = time.monotonic()
        while len(acknowledged) < TARGET_OPERATIONS:
            assert time.monotonic() - started < TIME_LIMIT, f"only {len(acknowledged)} operations in {TIME_LIMIT:.0f} s"
            run = Run(env, person, seal.id, rng.randrange(1 << 30))
            if not run.ready.wait(timeout=120):
                run.kill()
                pytest.fail(f"worker did not start: {run.stderr[-2000:]}")
            time.sleep(rng.uniform(1.0, 8.0))  # a random point in whatever it is doing
            if run.proc.poll() is not None:  # it died on its own: that is a bug, not a crash test
                run.kill()
                pytest.fail(f"worker exited by itself ({run.proc.returncode}): {run.stderr[-3000:]}")
            run.kill()
            kills += 1
            acknowledged += run.lines
        print(f"\ncrash test: {len(acknowledged)} acknowledged operations, {kills} SIGKILLs, {time.monotonic() - started:.0f} s")

        issued = {line.split()[1] for line in acknowledged if line.startswith("issue ")}
        revoked = {line.split()[1] for line in acknowledged if line.startswith("revoke ")}
        sealed = {line.split()[1] for line in acknowledged if line.startswith("seal ")}
        assert issued and revoked and sealed, (len(issued), len(revoked), len(sealed))

        # Consistent as the crashes left it (pending rows of the last run may remain) …
        assert certificate_violations(rt, allow_pending=True) == []
        # … and once start-up recovery has run past the grace period, no pending row is left.
        with clock.skewed(timedelta(minutes=11)), rt.db.transaction() as db:
            resolve_pending(rt, db, Actor.system("test"))
        assert certificate_violations(rt, allow_pending=False) == []
        assert audit_violations(rt) == []

        with rt.db.read() as db:
            rows = {r.serial: r for r in db.execute(select(Certificate).where(Certificate.profile == "citizen")).scalars()}
            # Nothing acknowledged is lost.
            assert issued <= set(rows), sorted(issued - set(rows))[:5]
            assert all(rows[s].status == "revoked" for s in revoked), [s for s in revoked if rows[s].status != "revoked"][:5]
            assert all(rows[s].status in ("issued", "revoked") for s in issued)
            docs = set(db.execute(select(SealedDocument.id)).scalars())
            assert sealed <= docs, sorted(sealed - docs)[:5]
            seal_audits = [e.details for e in db.execute(select(AuditEntry).where(AuditEntry.action == "signing.seal.pdf")).scalars()]
            assert all(any(doc in d for d in seal_audits) for doc in docs), "a sealed document without its audit entry"
            db_revoked = {s for s, r in rows.items() if r.status == "revoked"}
            db_good = {s for s, r in rows.items() if r.status == "issued"}
            # OCSP says what the database says (the stored, pre-signed responses included).
            for serial in list(db_revoked) + rng.sample(sorted(db_good), min(200, len(db_good))):
                resp = x509_ocsp.load_der_ocsp_response(ocsp.response_for(rt, db, serial))
                want = x509_ocsp.OCSPCertStatus.REVOKED if serial in db_revoked else x509_ocsp.OCSPCertStatus.GOOD
                assert resp.certificate_status == want, (serial, resp.certificate_status)

        # The CRL, published after the crashes, lists exactly the revoked certificates.
        with rt.db.transaction() as db:
            crl.publish_crls(rt, db, Actor.cli(), rt.settings.ca_issuing_name, trigger="test")
        with rt.db.read() as db:
            listed = {format(e.serial_number, "x") for e in x509.load_der_x509_crl(crl.current_crl(rt, db, rt.settings.ca_issuing_name))}
        assert db_revoked <= listed and not (listed & db_good)
