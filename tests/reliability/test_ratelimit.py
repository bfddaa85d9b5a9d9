"""core.ratelimit: the sliding-window arithmetic, both backends, and the 429 problem over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from core.db import Database
from core.errors import Kind, Problem
from core.ratelimit import (
    DatabaseBackend,
    Limiter,
    MemoryBackend,
    RateLimitCounter,
    Rule,
    hit,
    limited,
    limiter,
    parse_overrides,
)
from core.web import install
from tests.conftest import serve_app


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def memory_limiter(clock: FakeClock, **kw: object) -> Limiter:
    return Limiter(MemoryBackend(), now=clock, **kw)  # type: ignore[arg-type]


# -- rules and settings --------------------------------------------------------------------------


@pytest.mark.parametrize("area,limit,window", [("", 1, 1), ("Login", 1, 1), ("a b", 1, 1), ("x", 0, 1), ("x", 1, 0), ("x", 1, 86401)])
def test_rule_refuses_bad_values(area: str, limit: int, window: int) -> None:
    with pytest.raises(ValueError):
        Rule(area, limit, window)


def test_overrides_parse_and_refuse_garbage() -> None:
    assert parse_overrides(["login=50/60", " otp_send = off "]) == {"login": (50, 60), "otp_send": None}
    for bad in ["login", "login=", "login=5", "login=5/0", "login=0/60", "=5/60", "login=a/b"]:
        with pytest.raises(ValueError):
            parse_overrides([bad])


def test_settings_reject_a_bad_override() -> None:
    from core.settings import load_settings

    with pytest.raises(Problem) as caught:
        load_settings({"EAUTH_HOME": "/nonexistent", "EAUTH_RATE_LIMITS": "login=lots"})
    assert caught.value.kind is Kind.INVALID_CONFIG
    s = load_settings({"EAUTH_HOME": "/nonexistent", "EAUTH_RATE_LIMITS": "login=5/60,tsa=off", "EAUTH_RATE_LIMIT_BACKEND": "database"})
    assert s.rate_limits == ["login=5/60", "tsa=off"] and s.rate_limit_backend == "database"


# -- memory backend ------------------------------------------------------------------------------


def test_limit_then_problem_with_retry_after() -> None:
    clock = FakeClock()
    lim = memory_limiter(clock)
    rule = Rule("login", limit=3, window=60)
    assert [lim.hit(rule, "10.0.0.1").remaining for _ in range(3)] == [2, 1, 0]
    with pytest.raises(Problem) as caught:
        lim.hit(rule, "10.0.0.1")
    problem = caught.value
    assert problem.kind is Kind.RATE_LIMITED and problem.status == 429
    assert problem.code == "rate_limited.login"
    retry = int(problem.headers["Retry-After"])
    assert 1 <= retry <= 120 and problem.extra["retry_after"] == retry
    # another key is unaffected; the same key after Retry-After is allowed again
    assert lim.check(rule, "10.0.0.2").allowed
    clock.t += retry
    assert lim.check(rule, "10.0.0.1").allowed


def test_denied_calls_do_not_consume_the_budget() -> None:
    clock = FakeClock(600.0)  # start of a window
    lim = memory_limiter(clock)
    rule = Rule("otp_send", limit=2, window=10)
    lim.hit(rule, "k")
    lim.hit(rule, "k")
    for _ in range(50):
        assert not lim.check(rule, "k").allowed
    clock.t += 20  # two windows later: everything forgotten, the 50 refusals counted for nothing
    assert lim.check(rule, "k").allowed and lim.check(rule, "k").allowed


def test_previous_window_weighs_in_and_decays() -> None:
    clock = FakeClock(1000.0)  # window index 100 of 10 s, elapsed 0
    lim = memory_limiter(clock)
    rule = Rule("verify", limit=10, window=10)
    for _ in range(10):
        lim.hit(rule, "k")
    clock.t = 1012.0  # next window, 20 % elapsed: estimate = 10 × 0.8 = 8 → 2 more allowed
    assert lim.check(rule, "k").allowed and lim.check(rule, "k").allowed
    assert not lim.check(rule, "k").allowed
    clock.t = 1019.9  # 99 % elapsed: 10 × 0.01 + 2 = 2.1 → 7 more
    assert sum(lim.check(rule, "k").allowed for _ in range(10)) == 7


def test_reset_and_off_switch() -> None:
    clock = FakeClock()
    rule = Rule("login", limit=1, window=60)
    lim = memory_limiter(clock, overrides={"tsa": None, "login": (2, 60)})
    lim.hit(rule, "acct")
    lim.hit(rule, "acct")  # the override raised the limit to 2
    assert not lim.check(rule, "acct").allowed
    lim.reset(rule, "acct")
    assert lim.check(rule, "acct").allowed
    off = Rule("tsa", limit=1, window=60)
    assert all(lim.check(off, "x").allowed for _ in range(100))


def test_keys_are_hashed_and_memory_is_bounded() -> None:
    backend = MemoryBackend(max_keys=100)
    lim = Limiter(backend, now=FakeClock())
    rule = Rule("otp_send", limit=5, window=60)
    lim.hit(rule, "13800138000")
    assert not any("13800138000" in b for b in backend._counts)
    for i in range(1000):
        lim.hit(rule, f"198.51.100.{i}")
    assert len(backend) <= 100


def test_cost_must_be_positive_and_larger_than_limit_never_fits() -> None:
    lim = memory_limiter(FakeClock())
    rule = Rule("upload", limit=5, window=60)
    with pytest.raises(ValueError):
        lim.check(rule, "k", cost=0)
    decision = lim.check(rule, "k", cost=6)
    assert not decision.allowed and decision.retry_after >= 60


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(1, 20),
    window=st.integers(1, 120),
    gaps=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=80),
)
def test_property_windows_never_exceed_limit_and_retry_after_is_exact(limit: int, window: int, gaps: list[float]) -> None:
    """Admitted calls per aligned window ≤ limit; after a refusal, waiting Retry-After admits the
    next call and waiting one second less would not (Retry-After is a ceiling, never too short)."""
    clock = FakeClock(0.0)
    backend = MemoryBackend()
    lim = Limiter(backend, now=clock)
    rule = Rule("prop", limit, window)
    admitted: dict[int, int] = {}
    for gap in gaps:
        clock.t += gap
        snapshot = {k: list(v) for k, v in backend._counts.items()}
        decision = lim.check(rule, "k")
        if decision.allowed:
            admitted[int(clock.t // window)] = admitted.get(int(clock.t // window), 0) + 1
            continue
        # probe on copies of the state, so the main sequence is not disturbed
        for wait, expect in ((decision.retry_after, True), (decision.retry_after - 1, False)):
            if wait <= 0 or (not expect and decision.retry_after == 1):
                continue
            probe_backend = MemoryBackend()
            probe_backend._counts = {k: list(v) for k, v in snapshot.items()}
            probe = Limiter(probe_backend, now=FakeClock(clock.t + wait))
            probe._hash_key = lim._hash_key
            assert probe.check(rule, "k").allowed is expect, (wait, decision)
    assert all(n <= limit for n in admitted.values())


# -- database backend (runs on SQLite and PostgreSQL) --------------------------------------------


def db_limiter(rt, clock: Callable[[], float]) -> Limiter:  # type: ignore[no-untyped-def]
    return Limiter(DatabaseBackend(rt.db), hash_key=lambda v: rt.vault.blind_index(v, context="ratelimit"), now=clock)


def test_database_backend_shares_counts_between_processes(rt) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(2_000_000.0)
    rule = Rule("test_shared", limit=4, window=60)
    # Two limiters on two engines stand for two worker processes.
    other_db = Database(rt.db.url)
    try:
        a = db_limiter(rt, clock)
        b = Limiter(DatabaseBackend(other_db), hash_key=lambda v: rt.vault.blind_index(v, context="ratelimit"), now=clock)
        assert a.check(rule, "13800138000").allowed
        assert b.check(rule, "13800138000").allowed
        assert a.check(rule, "13800138000").allowed
        assert b.check(rule, "13800138000").allowed
        with pytest.raises(Problem) as caught:
            a.hit(rule, "13800138000")
        assert caught.value.code == "rate_limited.test_shared"
        assert not b.check(rule, "13800138000").allowed
        with rt.db.read() as s:
            rows = s.query(RateLimitCounter).filter(RateLimitCounter.bucket == a.bucket(rule, "13800138000")).all()
            assert [r.count for r in rows] == [4]  # denied calls gave their reservation back
            assert all("13800138000" not in r.bucket for r in s.query(RateLimitCounter).all())
        b.reset(rule, "13800138000")
        assert a.check(rule, "13800138000").allowed
    finally:
        other_db.dispose()


def test_database_backend_is_exact_under_concurrency(rt) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(3_000_000.0)
    rule = Rule("test_race", limit=25, window=60)
    engines = [Database(rt.db.url) for _ in range(2)]
    results: list[bool] = []
    lock = threading.Lock()

    def worker(db: Database) -> None:
        lim = Limiter(DatabaseBackend(db), hash_key=lambda v: "race:" + v.replace("\x00", "|"), now=clock)
        for _ in range(10):
            ok = lim.check(rule, "same-client").allowed
            with lock:
                results.append(ok)

    try:
        threads = [threading.Thread(target=worker, args=(engines[i % 2],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for e in engines:
            e.dispose()
    assert len(results) == 60
    assert sum(results) == 25


def test_database_backend_sweeps_expired_rows(rt) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(4_000_000.0)
    backend = DatabaseBackend(rt.db, sweep_every=5)
    lim = Limiter(backend, hash_key=lambda v: "sweep:" + v.replace("\x00", "|"), now=clock)
    rule = Rule("test_sweep", limit=100, window=10)
    for i in range(4):
        lim.check(rule, f"old{i}")
    clock.t += 1000
    backend._calls = 4  # the next call is a sweep call
    lim.check(rule, "new")
    with rt.db.read() as s:
        left = {r.bucket for r in s.query(RateLimitCounter).filter(RateLimitCounter.bucket.like("sweep:%")).all()}
    assert left == {"sweep:test_sweep|new"}


def test_runtime_limiter_follows_settings(rt) -> None:  # type: ignore[no-untyped-def]
    lim = limiter(rt)
    assert lim is limiter(rt)  # one per process
    assert isinstance(lim.backend, MemoryBackend) == (rt.settings.rate_limit_backend == "memory")


# -- over HTTP -----------------------------------------------------------------------------------


def test_route_dependency_answers_429_problem_over_http(rt) -> None:  # type: ignore[no-untyped-def]
    rule = Rule("test_http", limit=2, window=3600)
    app = FastAPI()
    app.state.runtime = rt
    install(app, max_body=1024)

    @app.get("/limited", dependencies=[Depends(limited(rule))])
    def limited_route() -> dict[str, str]:
        return {"ok": "yes"}

    with serve_app(app) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/limited").status_code == 200
        assert client.get("/limited").status_code == 200
        r = client.get("/limited")
        assert r.status_code == 429
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1
        body = r.json()
        assert body["type"] == "urn:eauth:problem:rate-limited" and body["code"] == "rate_limited.test_http"
        # loopback is a trusted proxy by default: the forwarded client address is the key
        assert client.get("/limited", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    limiter(rt).reset(rule, "127.0.0.1")


def test_module_level_hit_uses_runtime_limiter(rt) -> None:  # type: ignore[no-untyped-def]
    rule = Rule("test_module", limit=1, window=3600)
    hit(rt, rule, "k-module")
    with pytest.raises(Problem):
        hit(rt, rule, "k-module")
    limiter(rt).reset(rule, "k-module")
