"""HSM failures: the Nth token call fails, a wrong PIN, a token missing at start or pulled while
serving. Each gives a clear problem, leaves nothing half-written and recovers when the token does."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.errors import Kind, Problem
from core.security import Actor
from hsm.errors import HsmError, HsmErrorKind
from tests.factories import unique_id_number
from tests.reliability.invariants import audit_violations, certificate_violations, counts


def make_csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


class FailNth:
    """A fault hook failing the ``n``-th token call (1-based) with ``kind``; counts every call."""

    def __init__(self, n: int | None, kind: HsmErrorKind = HsmErrorKind.DEVICE_ERROR) -> None:
        self.n, self.kind, self.calls, self.ops = n, kind, 0, []  # type: ignore[var-annotated]

    def __call__(self, operation: str) -> None:
        self.calls += 1
        self.ops.append(operation)
        if self.n is not None and self.calls == self.n:
            raise HsmError(self.kind, f"injected failure of call {self.n} ({operation})")


class AlwaysFail:
    def __init__(self, kind: HsmErrorKind) -> None:
        self.kind = kind

    def __call__(self, operation: str) -> None:
        raise HsmError(self.kind, f"injected: token unavailable ({operation})")


@pytest.fixture
def faults(fresh_rt) -> Iterator[Callable[[Callable[[str], None] | None], None]]:  # type: ignore[no-untyped-def]
    def install(hook: Callable[[str], None] | None) -> None:
        fresh_rt.token.fault_hook = hook

    yield install
    fresh_rt.token.fault_hook = None


def register(rt, name: str = "张三") -> str:  # type: ignore[no-untyped-def]
    from identity.service import register_person

    with rt.db.transaction() as db:
        return register_person(rt, db, Actor.cli(), name=name, id_number=unique_id_number()).id


def issue(rt, person_id: str):  # type: ignore[no-untyped-def]
    from ca.service import issue_certificate

    with rt.db.transaction() as db:
        return issue_certificate(rt, db, Actor.cli(), profile="citizen", csr=make_csr(), subject_id=person_id)


def test_issuance_survives_a_failure_at_every_token_call(fresh_rt, faults) -> None:  # type: ignore[no-untyped-def]
    """Fail call 1, then 2, … of an issuance: each attempt either fails with a 503 HSM problem or
    succeeds, the serial of a failed attempt is retired (never reused), and no certificate exists
    without its record and audit entry."""
    rt = fresh_rt
    rt.audit.checkpoint_every = 3  # so audit checkpoints (an HSM signature) happen inside issuances
    person = register(rt)
    probe = FailNth(None)
    faults(probe)
    for _ in range(3):
        issue(rt, person)
    per_issue = max(1, probe.calls // 3)
    assert "sign" in probe.ops, probe.ops
    seen_serials: set[str] = set()
    failures = successes = 0
    for n in range(1, per_issue * 3 + 2):
        faults(FailNth(n))
        before = counts(rt)
        try:
            result = issue(rt, person)
        except Problem as exc:
            failures += 1
            assert exc.kind is Kind.HSM_UNAVAILABLE and exc.status == 503, exc
            assert exc.code == "hsm.device_error" and exc.headers.get("Retry-After")
            after = counts(rt)
            assert after.get("cert_issued", 0) == before.get("cert_issued", 0)
            assert after["maintenance"] == before["maintenance"]
        else:
            successes += 1
            assert result.serial not in seen_serials
            seen_serials.add(result.serial)
        faults(None)
        assert certificate_violations(rt) == []
    assert failures >= 1, "no injected failure reached the issuance path"
    # recovery: the token is healthy again and issuance works; audit chain intact
    result = issue(rt, person)
    assert result.serial not in seen_serials
    assert audit_violations(rt) == []
    from ca.models import Certificate
    from sqlalchemy import select

    with rt.db.read() as s:
        serials = list(s.execute(select(Certificate.serial)).scalars())
    assert len(serials) == len(set(serials))


def test_checkpoint_signature_failure_keeps_the_change_and_its_entry(fresh_rt, faults, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint falling due while the HSM fails does not fail the change it falls in (a person
    registration needs no HSM; and an issuance whose signature failed must keep its failed record):
    change and audit entry commit together, the checkpoint is skipped, and this process signs the
    one it owes at its next entry once the token is back."""
    rt = fresh_rt
    from core import audit
    from core.audit import AuditCheckpoint, AuditHead

    monkeypatch.setattr(audit, "CHECKPOINT_RETRY_SECONDS", 0.0)
    with rt.db.read() as s:
        head = s.get(AuditHead, 1).seq
    rt.audit.checkpoint_every = head + 1  # the next entry needs a checkpoint
    before = counts(rt)
    faults(FailNth(1))
    register(rt, "李四")
    after = counts(rt)
    assert after["persons"] == before["persons"] + 1 and after["audit"] == before["audit"] + 1
    with rt.db.read() as s:
        assert s.get(AuditCheckpoint, head + 1) is None  # skipped
    faults(None)
    register(rt, "王五")
    with rt.db.read() as s:
        assert s.get(AuditCheckpoint, head + 2) is not None  # the owed checkpoint, at the next entry
    assert audit_violations(rt) == []


def test_token_pulled_while_serving_gives_503_problems_then_recovers(fresh_rt, faults) -> None:  # type: ignore[no-untyped-def]
    from eauth.app import create_app
    from tests.conftest import serve_app

    rt = fresh_rt
    with serve_app(create_app(rt)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/health").status_code == 200
        faults(AlwaysFail(HsmErrorKind.TOKEN_MISSING))
        r = client.get("/health")
        assert r.status_code == 503
        assert r.json()["checks"]["hsm"] == {"status": "error", "code": "token_missing"}
        assert r.json()["checks"]["database"]["status"] == "ok"
        faults(None)
        assert client.get("/health").status_code == 200


def test_token_missing_at_start_and_wrong_pin_are_one_line_errors(cli_home) -> None:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    ok = cli_home.run("audit", "verify")
    entries_before = ok.stdout

    wrong = cli_home.run("--json", "audit", "verify", check=False, env={"EAUTH_TOKEN_PIN": "not-the-pin"})
    assert wrong.returncode == 7, wrong.stderr
    assert '"code": "hsm.wrong_pin"' in wrong.stderr and "Traceback" not in wrong.stderr

    missing = cli_home.run("audit", "verify", check=False, env={"EAUTH_TOKEN_LABEL": "no-such-token"})
    assert missing.returncode == 7 and "[hsm.token_missing]" in missing.stderr and "Traceback" not in missing.stderr

    # The token's files disappear (HSM unplugged): the server refuses to start, clearly.
    tokens = cli_home.home / "softhsm" / "tokens"
    aside = cli_home.home.parent / "tokens-aside"
    shutil.move(str(tokens), str(aside))
    tokens.mkdir()
    gone = cli_home.run("serve", "--port", "1", check=False)
    assert gone.returncode == 7 and "[hsm.token_missing]" in gone.stderr, gone.stderr
    # … and the token comes back: everything works again, nothing was written meanwhile.
    tokens.rmdir()
    shutil.move(str(aside), str(tokens))
    again = cli_home.run("audit", "verify")
    assert again.stdout == entries_before
