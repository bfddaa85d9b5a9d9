"""core.metrics: /metrics over real HTTP, its access rule, HSM/DB/problem/rate-limit instrumentation,
and aggregation across real worker processes (`eauth serve --workers 2`)."""

from __future__ import annotations

import os
import re
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
