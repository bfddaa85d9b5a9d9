"""Group commit of concurrent API issuances (ca.groupcommit): requests that wait together are issued
in one group, and each still gets exactly its own certificate or its own problem, with its own
pending-then-issued row and audit entry."""

from __future__ import annotations

import threading
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from ca import groupcommit, service
from ca.models import Certificate
from core.audit import AuditEntry
from core.errors import Problem
from core.security import Actor
from tests.ca.conftest import Subjects, make_csr


def _spki(key) -> bytes:  # type: ignore[no-untyped-def]
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_waiting_requests_form_one_group_and_each_gets_its_own_result(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    gc = groupcommit.GroupCommit(rt)
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(6)]
    requests: list[service.CertificateRequest] = []
    for i, key in enumerate(keys):
        requests.append(service.CertificateRequest(Actor.cli(f"client-{i}"), "citizen", make_csr(key), subjects.person_id))
    # three that must fail, each for its own reason
    requests.append(service.CertificateRequest(Actor.cli("client-bad-csr"), "citizen", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", subjects.person_id))
    requests.append(service.CertificateRequest(Actor.cli("client-unknown"), "citizen", make_csr(), "0" * 32))
    requests.append(service.CertificateRequest(Actor.cli("client-no-dns"), "server", make_csr(), subjects.dept_id))

    outcomes: list[object] = [None] * len(requests)

    def run(i: int) -> None:
        try:
            outcomes[i] = gc.issue(requests[i])
        except Problem as exc:
            outcomes[i] = exc

    gc._combiner.acquire()  # hold the group back until every request waits (deterministic grouping)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(gc._waiting) < len(requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(gc._waiting) == len(requests)
    gc._combiner.release()
    for t in threads:
        t.join(60)
    assert gc.groups == 1 and gc.requests == len(requests)

    issued = outcomes[: len(keys)]
    for key, got in zip(keys, issued, strict=True):
        assert isinstance(got, service.IssuedCertificate), got
        assert _spki(got.certificate.public_key()) == _spki(key.public_key())  # its own key, not a neighbour's
    assert len({c.serial for c in issued}) == len(keys)  # type: ignore[union-attr]
    codes = [getattr(o, "code", None) for o in outcomes[len(keys) :]]
    assert codes[0].startswith("csr.") and codes[1] == "ca.unknown_subject" and codes[2] == "ca.dns_required", codes

    with rt.db.read() as db:
        for i, cert in enumerate(issued):
            row = db.get(Certificate, cert.serial)  # type: ignore[union-attr]
            assert row.status == "issued" and row.der == cert.der and row.requested_by == requests[i].actor.ref  # type: ignore[union-attr]
            audit = db.execute(select(AuditEntry).where(AuditEntry.target == f"certificate:{cert.serial}")).scalars().all()  # type: ignore[union-attr]
            assert [(a.action, a.outcome, a.actor) for a in audit] == [("ca.certificate.issue", "success", requests[i].actor.ref)]
    assert rt.audit.verify(rt.db).ok


def test_a_lone_request_is_a_group_of_one(rt, subjects: Subjects) -> None:  # type: ignore[no-untyped-def]
    gc = groupcommit.GroupCommit(rt)
    cert = gc.issue(service.CertificateRequest(Actor.cli("alone"), "citizen", make_csr(), subjects.person_id))
    assert gc.groups == 1 and cert.profile == "citizen"
