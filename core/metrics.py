"""Prometheus metrics: HTTP, HSM, database, and the platform's own events, safe across workers.

Incrementing a counter from any package (after the transaction committed, so a rollback is not
counted)::

    from core import metrics
    metrics.CERTIFICATES_ISSUED.labels(profile="citizen").inc()
    metrics.LOGINS.labels(method="password", outcome="failure").inc()

The counters offered (labels in brackets; keep label values from a closed set, never ids):

==============================================  ===============================================
``CERTIFICATES_ISSUED`` [profile]               ``eauth_certificates_issued_total``
``CERTIFICATES_REVOKED`` [reason]               ``eauth_certificates_revoked_total``
``CRLS_PUBLISHED`` [ca]                         ``eauth_crls_published_total``
``OCSP_RESPONSES`` [status]                     ``eauth_ocsp_responses_total`` (responseStatus, RFC 6960 §4.2.1)
``LOGINS`` [method, outcome]                    ``eauth_logins_total`` (success/failure/refused)
``TOKENS_ISSUED`` [grant]                       ``eauth_tokens_issued_total``
``SEALS_APPLIED`` [level]                       ``eauth_seals_applied_total``
``VERIFICATIONS`` [indication]                  ``eauth_verifications_total``
``TIMESTAMPS_ISSUED`` [outcome]                 ``eauth_timestamps_issued_total``
==============================================  ===============================================

**Audited events count themselves.** Issuance (and renewal, re-key, modification), revocation and
suspension, CRL publication, logins and seals are written to the audit log in the transaction that
makes them; :func:`audited` maps those audit actions to the counters above, and ``core.audit`` calls
it *after that transaction commits* (a rolled-back issuance is neither audited nor counted). Tokens,
verifications, timestamps and OCSP responses are not audited one by one: their own code paths count
them — the OCSP fast path through :func:`watch` (plain integers it keeps anyway, read every 2 s), so
not even a Counter's lock is taken per response.

Recorded here without anyone's help: ``eauth_http_requests_total`` and
``eauth_http_request_duration_seconds`` per route *template* (``/ocsp/{request}``, never the raw
path), method and status; ``eauth_hsm_operation_duration_seconds`` per token operation (through
``Token.observer``, so ``hsm`` stays free of ``core``); ``eauth_db_errors_total`` (from
``core.db.translate_db_errors``); ``eauth_problems_total`` per problem code (every error response);
``eauth_rate_limited_total`` per area; ``eauth_process_resident_memory_bytes`` and
``eauth_db_pool_checked_out`` per worker.

**Several workers.** ``eauth serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at
``$EAUTH_HOME/run/metrics`` (emptied at start) before uvicorn spawns its workers; each worker then
writes its samples to memory-mapped files there and ``/metrics``, answered by whichever worker gets
the scrape, aggregates all of them (prometheus_client's multiprocess mode). Gauges carry a ``pid``
label in that mode. A single process (tests, ``--workers 1``) uses the ordinary in-memory registry.

**Access.** ``/metrics`` answers only a direct loopback peer with no forwarding headers (nginx adds
them, so nothing from outside reaches it through the proxy), or any peer presenting
``Authorization: Bearer $EAUTH_METRICS_TOKEN`` when that setting is present.
"""

from __future__ import annotations

import hmac
import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as _values

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from core.runtime import Runtime

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_HTTP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_HSM_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)

HTTP_REQUESTS = Counter("eauth_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram("eauth_http_request_duration_seconds", "HTTP request latency", ["method", "route"], buckets=_HTTP_BUCKETS)
HSM_LATENCY = Histogram(
    "eauth_hsm_operation_duration_seconds", "PKCS#11 token call latency, lock wait included", ["operation", "outcome"], buckets=_HSM_BUCKETS
)
DB_ERRORS = Counter("eauth_db_errors_total", "Database failures turned into 503 problems", ["code"])
DB_REPLICA_FALLBACKS = Counter("eauth_db_replica_fallbacks_total", "Replica reads served by the primary because the replica was unreachable")
PROBLEMS = Counter("eauth_problems_total", "Problem documents returned, by code", ["status", "code"])
RATE_LIMITED = Counter("eauth_rate_limited_total", "Calls refused by a rate limit", ["area"])
AUDIT_CHECKPOINTS_SKIPPED = Counter("eauth_audit_checkpoints_skipped_total", "Audit checkpoints that fell due while the HSM failed (core.audit)")

CERTIFICATES_ISSUED = Counter("eauth_certificates_issued_total", "Certificates issued", ["profile"])
CERTIFICATES_REVOKED = Counter("eauth_certificates_revoked_total", "Certificates revoked or suspended", ["reason"])
CRLS_PUBLISHED = Counter("eauth_crls_published_total", "CRLs signed and published", ["ca"])
OCSP_RESPONSES = Counter("eauth_ocsp_responses_total", "OCSP responses served", ["status"])
LOGINS = Counter("eauth_logins_total", "Login attempts", ["method", "outcome"])
TOKENS_ISSUED = Counter("eauth_tokens_issued_total", "OAuth/OIDC tokens issued", ["grant"])
SEALS_APPLIED = Counter("eauth_seals_applied_total", "Seals applied to documents", ["level"])
VERIFICATIONS = Counter("eauth_verifications_total", "Signature verifications", ["indication"])
TIMESTAMPS_ISSUED = Counter("eauth_timestamps_issued_total", "RFC 3161 timestamp requests answered", ["outcome"])

RESIDENT_MEMORY = Gauge("eauth_process_resident_memory_bytes", "Resident memory of this worker", multiprocess_mode="all")
DB_POOL_CHECKED_OUT = Gauge("eauth_db_pool_checked_out", "Database connections in use by this worker", multiprocess_mode="all")


# -- audited events -------------------------------------------------------------------------------

_ISSUANCE = ("ca.certificate.issue", "ca.certificate.renew", "ca.certificate.rekey", "ca.certificate.modify")


def _label(value: Any, default: str = "unknown") -> str:
    """A label value from audit details: short, printable, never an id (the callers pick fields
    whose values come from closed sets: profile and reason names, levels, authentication methods)."""
    text = str(value) if value not in (None, "") else default
    return text[:40]


def audited(action: str, target: str, details: dict[str, Any]) -> None:
    """Count one committed audit entry, if its action is one the metrics follow."""
    if action in _ISSUANCE:
        CERTIFICATES_ISSUED.labels(profile=_label(details.get("profile"))).inc()
    elif action == "ca.certificate.revoke":
        CERTIFICATES_REVOKED.labels(reason=_label(details.get("reason"), "unspecified")).inc()
    elif action == "ca.certificate.suspend":
        CERTIFICATES_REVOKED.labels(reason="certificateHold").inc()
    elif action == "ca.crl.publish":
        CRLS_PUBLISHED.labels(ca=_label(target.partition(":")[2])).inc()
    elif action == "sso.login.success":
        amr = details.get("amr") or []
        LOGINS.labels(method=_label("+".join(sorted(str(m) for m in amr))), outcome="success").inc()
    elif action == "sso.login.failure":
        LOGINS.labels(method=_label(details.get("method")), outcome="failure").inc()
    elif action == "sso.login.refused":
        LOGINS.labels(method=_label(details.get("method")), outcome="refused").inc()
    elif action.startswith("signing.seal.") and "level" in details:  # .pdf, .jws, .cms (not .create, .allow…)
        SEALS_APPLIED.labels(level=_label(details.get("level"))).inc(int(details.get("count", 1)))


class _Watched:
    def __init__(self, counter: Counter, label: str, read: Callable[[], dict[str, int]]) -> None:
        self.counter, self.label, self.read = counter, label, read
        self.last: dict[str, int] = {}


_WATCHED: dict[str, _Watched] = {}
_watch_lock = threading.Lock()
SYNC_EVERY = 2.0  # seconds between two syncs of the watched totals in each process


def watch(name: str, counter: Counter, label: str, read: Callable[[], dict[str, int]]) -> None:
    """Feed ``counter`` from running totals kept by a hot path in plain integers (``read()`` →
    ``{label value: total so far}``): the path pays an ``+= 1`` and no lock, and the growth is added
    to the counter every ``SYNC_EVERY`` seconds and before this process answers a scrape. ``name``
    identifies the source; watching it again (a new runtime) replaces the previous reader."""
    with _watch_lock:
        _WATCHED[name] = _Watched(counter, label, read)


def sync_watched() -> None:
    with _watch_lock:
        for w in _WATCHED.values():
            for value, total in w.read().items():
                grown = total - w.last.get(value, 0)
                if grown > 0:
                    w.counter.labels(**{w.label: value}).inc(grown)
                    w.last[value] = total


_sync_thread: threading.Thread | None = None


def _start_sync_thread() -> None:
    """One daemon thread per process feeds the watched counters (each worker its own)."""
    global _sync_thread
    with _watch_lock:
        if _sync_thread is None or not _sync_thread.is_alive():
            _sync_thread = threading.Thread(target=_sync_forever, args=(threading.Event(),), name="eauth-metrics-sync", daemon=True)
            _sync_thread.start()


def _sync_forever(stop: threading.Event) -> None:
    while not stop.wait(SYNC_EVERY):
        try:
            sync_watched()
        except Exception:  # noqa: BLE001 - metrics must not take the process down
            logging.getLogger("eauth.metrics").exception("syncing watched counters")


def multiprocess_active() -> bool:
    """True when samples go to ``PROMETHEUS_MULTIPROC_DIR`` (decided when prometheus_client loaded)."""
    return _values.ValueClass is not _values.MutexValue


def prepare_multiprocess_dir(directory: Path) -> Path:
    """Point workers at ``directory`` (called by ``eauth serve`` before it forks): created, emptied of
    a previous run's files so counters restart with the server, and exported to children."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory.resolve())
    return directory


def exposition() -> tuple[bytes, str]:
    """The text format for a scrape: every worker's samples in multiprocess mode."""
    sync_watched()
    if multiprocess_active():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def observe_hsm(operation: str, seconds: float, ok: bool) -> None:
    """``Token.observer``: one token call."""
    HSM_LATENCY.labels(operation=operation, outcome="ok" if ok else "error").observe(seconds)


def count_problem(status: int, code: str) -> None:
    PROBLEMS.labels(status=str(status), code=code).inc()


def count_db_error(code: str) -> None:
    DB_ERRORS.labels(code=code).inc()


def count_replica_fallback() -> None:
    DB_REPLICA_FALLBACKS.inc()


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: peak instead of current
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MetricsMiddleware:
    """Times every HTTP request and labels it with the matched route's template."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime | None = None, gauge_every: float = 5.0) -> None:
        self.app = app
        self.runtime = runtime
        self.gauge_every = gauge_every
        self._next_gauges = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # an exception that escapes everything is answered 500 by the server

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(method=method, route=template, status=str(status)).inc()
            HTTP_LATENCY.labels(method=method, route=template).observe(time.perf_counter() - start)
            now = time.monotonic()
            if now >= self._next_gauges:
                self._next_gauges = now + self.gauge_every
                self._update_gauges()

    def _update_gauges(self) -> None:
        RESIDENT_MEMORY.set(_rss_bytes())
        if self.runtime is not None:
            pool: Any = self.runtime.db.engine.pool
            checkedout = getattr(pool, "checkedout", None)
            if checkedout is not None:
                DB_POOL_CHECKED_OUT.set(checkedout())


def _scrape_allowed(headers: Iterator[tuple[bytes, bytes]] | list[tuple[bytes, bytes]], peer: str | None, token: str | None) -> bool:
    forwarded = False
    authorization = b""
    for name, value in headers:
        if name in (b"x-forwarded-for", b"forwarded", b"x-real-ip", b"client-cert"):
            forwarded = True
        elif name == b"authorization":
            authorization = value
    if token:
        scheme, _, presented = authorization.decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())
    return peer in ("127.0.0.1", "::1") and not forwarded


def install(app: FastAPI, rt: Runtime) -> None:
    """Mount ``GET /metrics``, time every request, observe the runtime's token and limiter."""
    from core.errors import Kind, Problem
    from core.ratelimit import limiter

    token = rt.settings.metrics_token.get_secret_value() if rt.settings.metrics_token is not None else None
    app.add_middleware(MetricsMiddleware, runtime=rt)
    rt.token.observer = observe_hsm
    limiter(rt).observers.append(lambda rule, decision: None if decision.allowed else RATE_LIMITED.labels(area=rule.area).inc())
    _start_sync_thread()

    def metrics_endpoint(request: Request) -> Response:
        if not _scrape_allowed(request.scope.get("headers", []), request.client.host if request.client else None, token):
            raise Problem(Kind.FORBIDDEN, "metrics.forbidden", "metrics are served to loopback or to a bearer of the metrics token")
        body, content_type = exposition()
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
