"""Soak: a mixed workload for 10 minutes against `eauth serve --workers 4` on PostgreSQL.

    .venv/bin/python -m bench.bench_soak            # 600 s (the figure in docs/performance.md)
    SOAK_SECONDS=120 .venv/bin/python -m bench.bench_soak
    BENCH_QUICK=1 .venv/bin/python -m bench.bench_soak   # 60 s smoke run

Realistic proportions for a provincial platform's day (status checks dominate, then API tokens,
then everything a person or department does): OCSP 55 %, client_credentials tokens 15 %,
certificate issuance 8 %, signature verification 8 %, citizen password login (the whole
authorize → login → code → token flow, Argon2id included) 7 %, PDF sealing at B-T 7 %.
Closed loop: CONCURRENCY clients each pick the next operation at random by those weights.

Every 5 s it samples: completed operations and errors per kind, the resident memory of each worker
process, and the database connections the platform holds (pg_stat_activity). At the end it prints
throughput and p50/p99 per operation, the error count (target 0), memory growth after warm-up
(target: flat), and plots the curves to docs/soak.png.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import secrets
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import psutil

from bench.common import ROOT, QUICK, bench_home, heading, machine, percentiles, serve
from tests.auth_service.agent import Agent
from tests.factories import unique_id_number, unique_uscc
from tests.reliability.actors import make_csr

SECONDS = float(os.environ.get("SOAK_SECONDS", "60" if QUICK else "600"))
WORKERS = 4
CONCURRENCY = int(os.environ.get("SOAK_CONCURRENCY", "8"))
SAMPLE_EVERY = 5.0
WEIGHTS = {"ocsp": 55, "token": 15, "issue": 8, "verify": 8, "login": 7, "seal": 7}
PASSWORD = "Soak-Test-Password-2026!"
PLOT = ROOT / "docs" / "soak.png"
# Idle keep-alive connections are dropped by the client after 2 s, before the server's 5 s
# (`eauth serve`: timeout_keep_alive=5). With equal timeouts, a client thread that spent 5 s in a
# login (its own connection) could send on the shared one just as the server closed it: httpx's
# "Server disconnected without sending a response", a race in the load generator, not a failure.
LIMITS = httpx.Limits(keepalive_expiry=2.0)


def soak_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, limits=LIMITS)


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    t0: float = field(default_factory=time.perf_counter)
    done_at: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, started: float, error: str | None) -> None:
        now = time.perf_counter()
        with self.lock:
            if error:
                error = f"t={now - self.t0:.1f}s {error}"
                self.errors[kind].append(error)
                print(f"  ERROR {kind}: {error}", flush=True)  # every error, with its reason, as it happens
            else:
                self.latencies[kind].append(now - started)
                self.done_at.append((now, kind))


def why(r: httpx.Response) -> str:
    """The reason a response is not the expected one, in a line: status, problem/OAuth code, and for a
    verification report its indication, sub-indication and each signature's reasons."""
    parts = [f"HTTP {r.status_code}"]
    ctype = r.headers.get("content-type", "")
    if "json" in ctype:
        try:
            body = r.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            for key in ("code", "error", "detail", "error_description", "indication", "sub_indication"):
                if body.get(key):
                    parts.append(f"{key}={body[key]}")
            for sig in body.get("signatures") or []:
                parts.append(f"sig[{sig.get('id')}]={sig.get('indication')}/{sig.get('sub_indication')} "
                             f"reasons={list(sig.get('reasons') or [])} revocation={sig.get('revocation')}")
    elif "ocsp-response" in ctype:
        parts.append(f"{len(r.content)} bytes, responseStatus byte {r.content[4:7].hex() if len(r.content) > 6 else r.content.hex()}")
    else:
        parts.append(repr(r.content[:120]))
    return " ".join(parts)


class Workload:
    def __init__(self, url: str, fixtures: dict[str, object]) -> None:
        self.url = url
        self.f = fixtures

    def _token(self, client: httpx.Client) -> str:
        r = client.post("/oidc/token", data={"grant_type": "client_credentials", "scope": self.f["scope"]}, auth=self.f["system"])  # type: ignore[arg-type]
        if r.status_code != 200:
            raise RuntimeError(f"token {why(r)}")
        return r.json()["access_token"]

    def run(self, kind: str, client: httpx.Client, rng: random.Random, bearer: dict[str, str]) -> None:
        f = self.f
        if kind == "ocsp":
            r = client.post("/ocsp", content=rng.choice(f["ocsp_requests"]), headers={"Content-Type": "application/ocsp-request"})  # type: ignore[arg-type]
            if r.status_code != 200 or r.content[:1] != b"\x30" or len(r.content) < 100:
                raise RuntimeError(f"ocsp {why(r)}")
        elif kind == "token":
            self._token(client)
        elif kind == "issue":
            r = client.post("/api/v1/certificates", json={"profile": "citizen", "csr": make_csr(), "subject_id": f["person"]}, headers=bearer)
            if r.status_code != 201:
                raise RuntimeError(f"issue {why(r)}")
        elif kind == "verify":
            r = client.post("/api/v1/verifications", content=f["sealed_pdf"], headers={**bearer, "Content-Type": "application/pdf"})  # type: ignore[arg-type]
            if r.status_code != 200 or r.json().get("indication") != "TOTAL-PASSED":
                raise RuntimeError(f"verify {why(r)}")
        elif kind == "seal":
            r = client.post(f"/api/v1/seals/{f['seal']}/pdf?level=B-T", content=f["pdf"], headers={**bearer, "Content-Type": "application/pdf"})  # type: ignore[arg-type]
            if r.status_code != 200 or not r.content.startswith(b"%PDF"):
                raise RuntimeError(f"seal {why(r)}")
        elif kind == "login":
            self._login(rng)

    def _login(self, rng: random.Random) -> None:
        f = self.f
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urlencode({"response_type": "code", "client_id": f["rp"][0], "redirect_uri": "http://127.0.0.1:9/cb", "scope": "openid",  # type: ignore[index]
                           "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8), "code_challenge": challenge, "code_challenge_method": "S256"})
        agent = Agent(self.url)
        try:
            back = agent.login(agent.get(f"/oidc/authorize?{query}"), f["login"], PASSWORD)  # type: ignore[arg-type]
            location = back.headers.get("location", "")
            if not location.startswith("http://127.0.0.1:9/cb"):
                raise RuntimeError(f"login ended at {back.status_code} {location[:80]}")
            code = parse_qs(urlsplit(location).query)["code"][0]
            r = agent.http.post("/oidc/token", data={"grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:9/cb", "code_verifier": verifier}, auth=f["rp"])  # type: ignore[arg-type]
            if r.status_code != 200 or "id_token" not in r.json():
                raise RuntimeError(f"code exchange {why(r)}")
        finally:
            agent.close()


def prepare(bh, url: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    idn = unique_id_number()
    person = json.loads(bh.eauth("--json", "person", "add", "--name", "压测用户", "--id-number", idn, "--password-stdin", input=PASSWORD + "\n").stdout)["id"]
    dept = json.loads(bh.eauth("--json", "org", "add", "--name", "压测市行政审批服务局", "--uscc", unique_uscc(), "--type", "government").stdout)["id"]
    scope = "certificates:write certificates:read verify"
    system = json.loads(bh.eauth("--json", "client", "add", "--name", "压测部门系统", "--grant", "client_credentials", *[a for s in scope.split() for a in ("--scope", s)]).stdout)
    seal = json.loads(bh.eauth("--json", "seal", "create", "--name", "压测专用章", "--department", dept, "--client", system["client_id"]).stdout)["id"]
    scope += f" seal:{seal}"
    # the seal scope must be allowed for the client: re-register with it
    system = json.loads(bh.eauth("--json", "client", "add", "--name", "压测部门系统", "--grant", "client_credentials", *[a for s in scope.split() for a in ("--scope", s)]).stdout)
    bh.eauth("seal", "allow", seal, "--client", system["client_id"])
    rp = json.loads(bh.eauth("--json", "client", "add", "--name", "压测应用", "--redirect-uri", "http://127.0.0.1:9/cb", "--first-party", "--grant", "authorization_code").stdout)
    pdf = (ROOT / "tests" / "data" / "signing" / "licence.pdf").read_bytes()
    fixtures: dict[str, object] = {"person": person, "login": idn, "seal": seal, "scope": scope, "pdf": pdf,
                                   "system": (system["client_id"], system["client_secret"]), "rp": (rp["client_id"], rp["client_secret"])}
    with httpx.Client(base_url=url, timeout=60) as client:
        token = Workload(url, fixtures)._token(client)
        bearer = {"Authorization": f"Bearer {token}"}
        chain = client.get("/ca/public-service.pem").text
        issuing = Path(bh.home) / "issuing.pem"
        issuing.write_text(chain)
        requests: list[bytes] = []
        for _ in range(200):
            r = client.post("/api/v1/certificates", json={"profile": "citizen", "csr": make_csr(), "subject_id": person}, headers=bearer)
            r.raise_for_status()
            leaf = Path(bh.home) / "leaf.pem"
            leaf.write_text(r.json()["pem"])
            requests.append(subprocess.run(["openssl", "ocsp", "-issuer", str(issuing), "-cert", str(leaf), "-no_nonce", "-reqout", "/dev/stdout"],
                                           capture_output=True, check=True).stdout)
        fixtures["ocsp_requests"] = requests
        sealed = client.post(f"/api/v1/seals/{seal}/pdf?level=B-T", content=pdf, headers={**bearer, "Content-Type": "application/pdf"})
        sealed.raise_for_status()
        fixtures["sealed_pdf"] = sealed.content
    return fixtures


def db_connections(bh) -> int:  # type: ignore[no-untyped-def]
    name = bh.db_url.rsplit("/", 1)[1]
    import psycopg

    with psycopg.connect(bh.db_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()[0]  # type: ignore[index]


def main() -> None:
    heading(f"Soak: mixed workload, {SECONDS:.0f} s, {WORKERS} workers, PostgreSQL, {CONCURRENCY} clients")
    print(machine())
    with bench_home(rate_limits="login=off,tsa=off,seal=off,verify_page=off") as bh, serve(bh, workers=WORKERS) as server:
        fixtures = prepare(bh, bh.url)
        work = Workload(bh.url, fixtures)
        stats = Stats()
        stop = threading.Event()
        kinds, weights = zip(*WEIGHTS.items())

        def client_loop(seed: int) -> None:
            rng = random.Random(seed)
            with soak_client(bh.url) as client:
                token = work._token(client)
                bearer = {"Authorization": f"Bearer {token}"}
                token_at = time.monotonic()
                while not stop.is_set():
                    if time.monotonic() - token_at > 240:  # access tokens last 10 minutes
                        token, token_at = work._token(client), time.monotonic()
                        bearer = {"Authorization": f"Bearer {token}"}
                    kind = rng.choices(kinds, weights)[0]
                    started = time.perf_counter()
                    try:
                        work.run(kind, client, rng, bearer)
                        stats.record(kind, started, None)
                    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                        stats.record(kind, started, f"{type(exc).__name__}: {exc}"[:1500])

        workers = [p for p in psutil.Process(server.pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]
        arenas = {p.pid: p.environ().get("MALLOC_ARENA_MAX", "unset") for p in workers}
        print(f"worker processes {sorted(arenas)}, MALLOC_ARENA_MAX {sorted(set(arenas.values()))} (eauth serve bounds the malloc arenas)", flush=True)
        samples: list[dict[str, object]] = []
        threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(CONCURRENCY)]
        t0 = stats.t0 = time.perf_counter()
        for t in threads:
            t.start()
        while (elapsed := time.perf_counter() - t0) < SECONDS:
            time.sleep(SAMPLE_EVERY)
            rss = {}
            for p in workers:
                try:
                    rss[p.pid] = p.memory_info().rss / 2**20
                except psutil.Error:
                    rss[p.pid] = float("nan")
            with stats.lock:
                done = len(stats.done_at)
                errors = sum(len(v) for v in stats.errors.values())
            samples.append({"t": time.perf_counter() - t0, "done": done, "errors": errors, "rss": rss, "db": db_connections(bh)})
            print(f"  t={samples[-1]['t']:6.0f}s  ops={done:7d}  errors={errors}  rss={' '.join(f'{v:.0f}' for v in rss.values())} MiB  db conns={samples[-1]['db']}", flush=True)
        stop.set()
        for t in threads:
            t.join(timeout=90)
        total = time.perf_counter() - t0

    lines = summarise(stats, samples, total)
    plot(stats, samples, t0)
    print("\n".join(lines))


def summarise(stats: Stats, samples: list[dict[str, object]], total: float) -> list[str]:
    out = [f"{'operation':<10} {'count':>8} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"]
    for kind in WEIGHTS:
        lat = stats.latencies.get(kind, [])
        p = percentiles([x * 1000 for x in lat])
        out.append(f"{kind:<10} {len(lat):>8} {len(lat) / total:>8.1f} {p[50]:>8.1f} {p[99]:>8.1f} {len(stats.errors.get(kind, [])):>7}")
    all_ops = sum(len(v) for v in stats.latencies.values())
    errors = sum(len(v) for v in stats.errors.values())
    out.append(f"{'all':<10} {all_ops:>8} {all_ops / total:>8.1f} {'':>8} {'':>8} {errors:>7}")
    for kind, errs in stats.errors.items():
        for err in errs[:20]:
            out.append(f"  {kind} error: {err}")
        if len(errs) > 20:
            out.append(f"  … {len(errs) - 20} more {kind} errors (each printed as it happened)")
    warm = [s for s in samples if float(s["t"]) >= min(120.0, total / 3)]  # type: ignore[arg-type]
    if len(warm) >= 2:
        first, last = warm[0]["rss"], warm[-1]["rss"]  # type: ignore[assignment]
        growth = [last[pid] - first[pid] for pid in first if pid in last]  # type: ignore[index,union-attr]
        out.append(f"worker RSS after warm-up: {' '.join(f'{first[p]:.0f}→{last[p]:.0f}' for p in first)} MiB (growth {max(growth):+.1f} MiB max over {float(warm[-1]['t']) - float(warm[0]['t']):.0f} s)")  # type: ignore[index,arg-type]
    out.append(f"DB connections held: min {min(int(s['db']) for s in samples)} max {max(int(s['db']) for s in samples)}")  # type: ignore[arg-type]
    return out


def plot(stats: Stats, samples: list[dict[str, object]], t0: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    span = max(float(s["t"]) for s in samples)  # type: ignore[arg-type]
    buckets = max(1, int(span // SAMPLE_EVERY))  # whole windows only: the last partial one would dip
    by_kind: dict[str, list[int]] = {k: [0] * buckets for k in WEIGHTS}
    lat_by: dict[str, list[list[float]]] = {k: [[] for _ in range(buckets)] for k in WEIGHTS}
    for (at, kind), lat in zip(stats.done_at, _latencies_in_order(stats)):
        b = int((at - t0) // SAMPLE_EVERY)
        if b >= buckets:
            continue
        by_kind[kind][b] += 1
        lat_by[kind][b].append(lat * 1000)
    xs = [i * SAMPLE_EVERY for i in range(buckets)]
    ax = axes[0][0]
    for kind, counts in by_kind.items():
        ax.plot(xs, [c / SAMPLE_EVERY for c in counts], label=kind)
    ax.set_title("throughput per operation (ops/s)")
    ax.set_xlabel("s")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    for kind, lats in lat_by.items():
        ax.plot(xs, [percentiles(v)[99] if v else float("nan") for v in lats], label=kind)
    ax.set_yscale("log")
    ax.set_title("p99 latency per 5 s window (ms, log)")
    ax.set_xlabel("s")
    ax.legend(fontsize=8)
    ax = axes[1][0]
    pids = list(samples[0]["rss"])  # type: ignore[arg-type]
    for pid in pids:
        ax.plot([float(s["t"]) for s in samples], [s["rss"].get(pid, float("nan")) for s in samples], label=f"worker {pid}")  # type: ignore[union-attr,arg-type]
    ax.set_title("resident memory per worker (MiB)")
    ax.set_xlabel("s")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    ax.plot([float(s["t"]) for s in samples], [int(s["db"]) for s in samples], label="DB connections")  # type: ignore[arg-type]
    ax.plot([float(s["t"]) for s in samples], [int(s["errors"]) for s in samples], label="errors (cumulative)")  # type: ignore[arg-type]
    ax.set_title("PostgreSQL connections and errors")
    ax.set_xlabel("s")
    ax.legend(fontsize=8)
    fig.suptitle(f"eAuth soak: {WORKERS} workers, PostgreSQL, {CONCURRENCY} closed-loop clients, {span:.0f} s")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=90)
    print(f"plot: {PLOT}")


def _latencies_in_order(stats: Stats) -> list[float]:
    """Latencies aligned with ``done_at`` (each kind's list is in completion order)."""
    cursors: dict[str, int] = defaultdict(int)
    out = []
    for _, kind in stats.done_at:
        out.append(stats.latencies[kind][cursors[kind]])
        cursors[kind] += 1
    return out


if __name__ == "__main__":
    main()
