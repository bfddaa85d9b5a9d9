"""core.metrics: /metrics over real HTTP, its access rule, HSM/DB/problem/rate-limit instrumentation,
and aggregation across real worker processes (`eauth serve --workers 2`)."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from core.metrics import _scrape_allowed
from core.ratelimit import Rule, hit, limiter
from tests.conftest import ROOT, free_port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for (n, lbls), v in samples(text).items():
        d = dict(lbls)
        if n == name and all(d.get(k) == val for k, val in labels.items()):
            total += v
    return total


def test_scrape_rule() -> None:
    assert _scrape_allowed([], "127.0.0.1", None)
    assert _scrape_allowed([], "::1", None)
    assert not _scrape_allowed([], "10.1.2.3", None)
    # through nginx every request comes from loopback, but carries forwarding headers
    assert not _scrape_allowed([(b"x-forwarded-for", b"203.0.113.7")], "127.0.0.1", None)
    assert not _scrape_allowed([(b"client-cert", b":MII=:")], "127.0.0.1", None)
    # with a token configured, only its bearer (from anywhere)
    assert _scrape_allowed([(b"authorization", b"Bearer s3cret")], "10.1.2.3", "s3cret")
    assert not _scrape_allowed([(b"authorization", b"Bearer wrong")], "127.0.0.1", "s3cret")
    assert not _scrape_allowed([], "127.0.0.1", "s3cret")


def test_metrics_endpoint_counts_requests_hsm_problems_and_limits(rt, http: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    before = http.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert before.headers["cache-control"] == "no-store"
    h0 = value(before.text, "eauth_http_requests_total", route="/health", status="200")
    hsm0 = value(before.text, "eauth_hsm_operation_duration_seconds_count", operation="ping", outcome="ok")
    nf0 = value(before.text, "eauth_problems_total", code="http.not_found")
    for _ in range(3):
        assert http.get("/health").status_code == 200
    assert http.get("/definitely/not/a/route").status_code == 404
    rule = Rule("test_metrics", limit=1, window=3600)
    hit(rt, rule, "m")
    with pytest.raises(Exception):
        hit(rt, rule, "m")
    limiter(rt).reset(rule, "m")
    after = http.get("/metrics").text
    assert value(after, "eauth_http_requests_total", route="/health", status="200") == h0 + 3
    # a path that matched no route is not a label value (no cardinality explosion from scanners)
    assert 'route="/definitely/not/a/route"' not in after
    assert value(after, "eauth_http_requests_total", route="unmatched", status="404") >= 1
    assert value(after, "eauth_problems_total", code="http.not_found") == nf0 + 1
    # /health pings the token: three timed HSM round trips
    assert value(after, "eauth_hsm_operation_duration_seconds_count", operation="ping", outcome="ok") == hsm0 + 3
    assert value(after, "eauth_rate_limited_total", area="test_metrics") >= 1
    assert value(after, "eauth_http_request_duration_seconds_count", route="/health") >= 3
    assert value(after, "eauth_process_resident_memory_bytes") > 10_000_000


def test_metrics_refused_through_a_proxy(http: httpx.Client) -> None:
    r = http.get("/metrics", headers={"X-Forwarded-For": "198.51.100.1"})
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "metrics.forbidden"


def test_hsm_failures_are_observed_as_errors(rt) -> None:  # type: ignore[no-untyped-def]
    from hsm.errors import HsmError, HsmErrorKind

    seen: list[tuple[str, bool]] = []
    previous_observer, previous_hook = rt.token.observer, rt.token.fault_hook

    def hook(op: str) -> None:
        raise HsmError(HsmErrorKind.DEVICE_ERROR, "injected")

    rt.token.observer = lambda op, secs, ok: seen.append((op, ok))
    rt.token.fault_hook = hook
    try:
        with pytest.raises(HsmError):
            rt.token.ping()
    finally:
        rt.token.observer, rt.token.fault_hook = previous_observer, previous_hook
    assert seen == [("ping", False)]


def test_db_errors_counted(tmp_path: Path) -> None:
    from core.db import Database
    from core.errors import Problem

    before = metrics.DB_ERRORS.labels(code="db.unavailable")._value.get()
    db = Database(f"sqlite:///{tmp_path}/missing/dir/x.db")
    with pytest.raises(Problem):
        db.ping()
    assert metrics.DB_ERRORS.labels(code="db.unavailable")._value.get() == before + 1


@pytest.mark.slow
def test_metrics_aggregate_across_worker_processes(cli_home) -> None:  # type: ignore[no-untyped-def]
    """Two real uvicorn workers: whichever answers the scrape reports both workers' requests."""
    cli_home.run("init")
    port = free_port()
    env = {**cli_home.env, "EAUTH_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "eauth"), "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        served = 0
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    served += 1
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.3)

        def one_health(_: int) -> int:
            with httpx.Client(base_url=base, timeout=10) as one:  # a new connection each time
                return int(one.get("/health").status_code == 200)

        pids: set[str | None] = set()
        deadline = time.time() + 60
        with ThreadPoolExecutor(8) as pool:
            while len(pids) < 2 and time.time() < deadline:
                served += sum(pool.map(one_health, range(24)))
                text = httpx.get(base + "/metrics").text
                pids = {dict(labels).get("pid") for (name, labels) in samples(text) if name == "eauth_process_resident_memory_bytes"}
        assert len(pids) == 2, f"expected samples from 2 workers, got {pids}"
        # eauth serve bounds glibc's malloc arenas in the workers it spawns (flat memory; see bound_malloc_arenas)
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"MALLOC_ARENA_MAX=2" in environ, f"worker {pid} runs without MALLOC_ARENA_MAX=2"
        # every request counted exactly once, whichever worker answered it and the scrape
        assert value(text, "eauth_http_requests_total", route="/health", status="200") == served
        assert (cli_home.home / "run" / "metrics").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ocsp_request(http: httpx.Client, pem: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp as x509_ocsp

    issuer = x509.load_pem_x509_certificate(http.get("/ca/public-service.pem").content)
    leaf = x509.load_pem_x509_certificate(pem.encode())
    return x509_ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)


def test_domain_counters_follow_what_happened(rt, http: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    """Issuance, revocation, OCSP (successful and malformed), tokens, TSA, verifications, logins —
    each moves its own series by exactly what was done, through the real HTTP API."""
    from auth_service.service import register_client
    from core.security import Actor
    from tests.reliability.actors import make_csr, register_person

    with rt.db.transaction() as db:
        client, secret = register_client(rt, db, Actor.cli(), name="metrics test", grant_types=["client_credentials"],
                                          scopes=["certificates:write", "certificates:read", "certificates:revoke", "verify"], redirect_uris=[])
    person = register_person(rt)
    before = http.get("/metrics").text

    r = http.post("/oidc/token", data={"grant_type": "client_credentials", "scope": "certificates:write certificates:revoke verify"}, auth=(client.client_id, secret))
    assert r.status_code == 200, r.text
    bearer = {"Authorization": f"Bearer {r.json()['access_token']}"}
    issued = http.post("/api/v1/certificates", json={"profile": "citizen", "csr": make_csr(), "subject_id": person}, headers=bearer)
    assert issued.status_code == 201, issued.text
    request = _ocsp_request(http, issued.json()["pem"])
    for _ in range(3):
        assert http.post("/ocsp", content=request, headers={"Content-Type": "application/ocsp-request"}).status_code == 200
    assert http.post("/ocsp", content=b"\x30\x03\x02\x01\x00", headers={"Content-Type": "application/ocsp-request"}).status_code == 200
    revoked = http.post(f"/api/v1/certificates/{issued.json()['serial']}/revoke", json={"reason": "keyCompromise"}, headers=bearer)
    assert revoked.status_code == 200, revoked.text
    tsa = http.post("/tsa", content=b"not a TimeStampReq", headers={"Content-Type": "application/timestamp-query"})
    assert tsa.status_code == 200
    pdf = (ROOT / "tests" / "data" / "signing" / "licence.pdf").read_bytes()
    report = http.post("/api/v1/verifications", content=pdf, headers={**bearer, "Content-Type": "application/pdf"})
    assert report.status_code == 200, report.text
    after = http.get("/metrics").text

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("eauth_tokens_issued_total", grant="client_credentials") == 1
    assert grew("eauth_certificates_issued_total", profile="citizen") == 1
    assert grew("eauth_certificates_revoked_total", reason="keyCompromise") == 1
    assert grew("eauth_ocsp_responses_total", status="successful") == 3
    assert grew("eauth_ocsp_responses_total", status="malformedRequest") == 1
    assert grew("eauth_timestamps_issued_total", outcome="rejection") == 1
    assert grew("eauth_verifications_total", indication=report.json()["indication"]) == 1
    # the HSM latency series saw the issuance's signature
    assert grew("eauth_hsm_operation_duration_seconds_count", outcome="ok") >= 1


def test_audited_events_are_counted_only_when_committed(rt) -> None:  # type: ignore[no-untyped-def]
    """Counting rides on the audit entry's commit: a rolled-back transaction leaves no count."""
    from auth_service.login import record_failure
    from core.security import Actor

    def crls(ca: str) -> float:
        return metrics.CRLS_PUBLISHED.labels(ca=ca)._value.get()

    run = secrets.token_hex(4)  # counters live as long as the process (both backends run here)
    with pytest.raises(RuntimeError), rt.db.transaction() as db:
        rt.audit.record(db, actor=Actor.cli(), action="ca.crl.publish", target=f"ca:rollback-{run}")
        raise RuntimeError("rolled back")
    assert crls(f"rollback-{run}") == 0
    with rt.db.transaction() as db:
        rt.audit.record(db, actor=Actor.cli(), action="ca.crl.publish", target=f"ca:commit-{run}")
        assert crls(f"commit-{run}") == 0, "counted before the commit"
    assert crls(f"commit-{run}") == 1

    failures = metrics.LOGINS.labels(method="pwd", outcome="failure")._value.get()
    record_failure(rt, Actor.anonymous("192.0.2.1"), keys={}, target="person:metrics", method="pwd", reason="bad_password")
    assert metrics.LOGINS.labels(method="pwd", outcome="failure")._value.get() == failures + 1
