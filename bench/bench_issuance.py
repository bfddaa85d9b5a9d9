"""Issuance end to end on PostgreSQL, EC P-256 (issue 3, "Speed").

What runs, all in one invocation (``python -m bench.bench_issuance``):

1. References: the raw HSM signing rate (``ca/public-service`` key, ECDSA P-256, one process and
   two processes) — the physical limit of the token here — and pkilint's cost for one of *our*
   certificates (the same linter issuance runs).
2. Through the API: ``POST /api/v1/certificates`` with a real access token (client_credentials
   client holding ``certificates:write``) against ``eauth serve --workers 2``, distinct
   pre-generated CSRs, N requests over 8 keep-alive connections. Each request does the whole
   issuance: CSR parse and proof of possession → checks → subject from the identity registry →
   serial reserved and committed → pkilint on the throwaway copy → HSM signature → verification →
   store + maintenance record + audit entry → commit.
3. Bulk: ``ca.bulk.issue_bulk_parallel`` (what ``eauth cert bulk --workers 2`` runs), same checks
   and records, batches of 100 in two processes; wall time includes spawning the workers.
4. Peer: ``openssl ca`` issuing the same number of certificates from the same CSRs, one process
   per certificate, two lanes in parallel (two CA directories with the same software key) so the
   peer also uses both cores.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import multiprocessing
import os
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.common import bench_home, heading, http_load, http_request, main_guard, report, scale, serve, tree_cpu

WORKERS = 2
CONCURRENCY = 8


def make_csrs(n: int) -> list[bytes]:
    """``n`` PKCS#10 requests (PEM), each with its own EC P-256 key — generated before any clock starts."""
    out = []
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench (ignored: the subject comes from the registry)")])
    for _ in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        out.append(x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return out


# -- references ----------------------------------------------------------------------------------------


def _hsm_sign_loop(env: dict[str, str], seconds: float) -> int:
    """Sign with the issuing CA key for ``seconds`` in a fresh process; returns the count."""
    os.environ.update(env)
    from core.settings import load_settings
    from eauth.runtime import build_runtime

    rt = build_runtime(load_settings())
    try:
        key = rt.token.key("ca/" + rt.settings.ca_issuing_name)
        data = os.urandom(600)  # about the size of a TBSCertificate
        algorithm = ec.ECDSA(hashes.SHA256())
        key.sign(data, algorithm)
        count = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(100):
                key.sign(data, algorithm)
            count += 100
        return count
    finally:
        rt.db.dispose()
        rt.token.close()


def hsm_rate(env: dict[str, str], processes: int, seconds: float = 3.0) -> float:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        counts = list(pool.map(_hsm_sign_loop, [env] * processes, [seconds] * processes))
    return sum(counts) / seconds


def lint_cost_ms(der: bytes, rounds: int = 200, *, stock: bool = False) -> float:
    """CPU per lint of ``der``: ``ca.lint``'s walk, or (``stock``) pkilint's own ``ValidatorContainer``
    walk of the same validators."""
    from ca import lint

    run = lint.lint_der_stock if stock else lint.lint_der
    run(der)
    t0 = time.process_time()  # CPU time: the machine is shared, wall time would count the others
    for _ in range(rounds):
        run(der)
    return (time.process_time() - t0) / rounds * 1000


def minimal_certificate() -> bytes:
    """One name, no extensions: what a bare pkilint figure (≈ 0.7 ms) is measured on."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minimal")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    )


def _postgres_backends(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving ``database`` (their process titles name it)."""
    import psutil

    out: dict[int, float] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = p.info["cmdline"] or []
            if cmd and cmd[0].startswith("postgres:") and f" {database} " in f" {' '.join(cmd)} ":
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


class PostgresCpu:
    """CPU the database's backends spend during a ``with`` block, sampled every 0.5 s so that a
    backend which exits inside the block (a bulk worker's connections) still counts up to its last
    sample."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.seconds = 0.0
        self.own_cpu = 0.0

    def __enter__(self) -> PostgresCpu:
        import threading

        self._start = _postgres_backends(self.database)
        self._last = dict(self._start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        t0 = time.thread_time()
        while not self._stop.wait(0.5):
            self._last.update(_postgres_backends(self.database))
        self.own_cpu = time.thread_time() - t0  # the sampler's own CPU, for callers that count this process

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._last.update(_postgres_backends(self.database))
        self.seconds = sum(v - self._start.get(pid, 0.0) for pid, v in self._last.items())


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the bulk workers, once their pool is shut down)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# -- the peer: openssl ca ---------------------------------------------------------------------------------

OPENSSL_CA_CONF = """\
[ ca ]
default_ca = bench
[ bench ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/certs
certificate = {ca_cert}
private_key = {ca_key}
serial = $dir/serial
default_md = sha256
default_days = 730
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[ anything ]
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,nonRepudiation
extendedKeyUsage = clientAuth,emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
certificatePolicies = 1.3.6.1.4.1.32473.156.1.1
crlDistributionPoints = URI:http://127.0.0.1/crl/public-service/0.crl
authorityInfoAccess = OCSP;URI:http://127.0.0.1/ocsp,caIssuers;URI:http://127.0.0.1/ca/public-service.cer
"""


def _openssl_lane(conf: Path, csr_files: list[Path], out: Path) -> int:
    ok = 0
    for i, f in enumerate(csr_files):
        done = subprocess.run(
            ["openssl", "ca", "-batch", "-notext", "-config", str(conf), "-in", str(f), "-out", str(out / f"{i}.pem")], capture_output=True, timeout=60
        )
        ok += done.returncode == 0
    return ok


def openssl_ca_rate(csrs: list[bytes], work: Path, lanes: int = WORKERS) -> tuple[float, int]:
    """``openssl ca`` (software EC P-256 CA key), one process per certificate; returns (rate, issued)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"), x509.NameAttribute(NameOID.COMMON_NAME, "openssl ca peer")])
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem, cert_pem = work / "ca.key", work / "ca.pem"
    key_pem.write_bytes(ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    plans = []
    for lane in range(lanes):
        d = work / f"lane{lane}"
        (d / "certs").mkdir(parents=True)
        (d / "out").mkdir()
        (d / "index.txt").write_text("")
        (d / "serial").write_text(f"{int.from_bytes(os.urandom(8)) | 1 << 60:016X}\n")  # whole octets: openssl reads hex pairs
        conf = d / "openssl.cnf"
        conf.write_text(OPENSSL_CA_CONF.format(dir=d, ca_cert=cert_pem, ca_key=key_pem))
        files = []
        for i, pem in enumerate(csrs[lane::lanes]):
            f = d / f"{i}.csr"
            f.write_bytes(pem)
            files.append(f)
        plans.append((conf, files, d / "out"))
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(lanes) as pool:
        issued = sum(pool.map(lambda p: _openssl_lane(*p), plans))
    elapsed = time.perf_counter() - t0
    if issued != len(csrs):
        raise RuntimeError(f"openssl ca issued {issued} of {len(csrs)} certificates")
    return issued / elapsed, issued


# -- the run --------------------------------------------------------------------------------------------------


def main() -> None:
    n_api = scale(2000, 200)
    n_bulk = scale(5000, 400)
    heading(f"Issuance end to end — PostgreSQL, EC P-256, citizen profile, {WORKERS} workers")
    t0 = time.perf_counter()
    csrs_api = make_csrs(n_api)
    csrs_bulk = make_csrs(n_bulk)
    warm = make_csrs(201)
    print(f"pre-generated {n_api + n_bulk + 201} CSRs in {time.perf_counter() - t0:.1f} s (not timed below)", flush=True)

    with bench_home() as bh, tempfile.TemporaryDirectory(prefix="eauth-bench-issuance-") as tmp:
        work = Path(tmp)
        rt = bh.runtime()
        from auth_service import service as sso
        from auth_service.oidc.access_token import issue_access_token
        from ca import bulk, service
        from core.security import Actor
        from eauth.runtime import build_runtime
        from identity import service as ids

        actor = Actor.cli("bench")
        with rt.db.transaction() as db:
            person = ids.register_person(rt, db, actor, name="张三", id_number="11010519491231002X", email="zhangsan@example.cn")
            client, _ = sso.register_client(rt, db, actor, name="bench issuance", grant_types=["client_credentials"], scopes=["certificates:write"])
        token = issue_access_token(rt, client_id=client.client_id, subject=client.client_id, scope="certificates:write", lifetime=3600)[0]

        # 1. references ---------------------------------------------------------------------------------
        with rt.db.transaction() as db:
            sample = service.issue_certificate(rt, db, actor, profile="citizen", csr=warm[0], subject_id=person.id)
        lint_ms = lint_cost_ms(sample.der)
        lint_stock_ms = lint_cost_ms(sample.der, stock=True)
        lint_min_ms = lint_cost_ms(minimal_certificate())
        env = {k: v for k, v in bh.env.items() if k.startswith("EAUTH_")}
        hsm1 = hsm_rate(env, 1)
        hsm2 = hsm_rate(env, WORKERS)
        report("raw HSM ECDSA P-256 signing, 1 process", hsm1, "signs/s")
        report(f"raw HSM ECDSA P-256 signing, {WORKERS} processes", hsm2, "signs/s")
        report("pkilint, one citizen certificate (CPU)", lint_ms, "ms", note=f"≤ {WORKERS * 1000 / lint_ms:,.0f}/s on {WORKERS} cores for linting alone")
        report("  same, pkilint's own validator walk", lint_stock_ms, "ms", note=f"ca.lint's walk = {lint_ms / lint_stock_ms:.2f}× of it, same findings")
        report("  pkilint, minimal certificate (1 name, 0 ext.)", lint_min_ms, "ms")
        items = [service.BulkItem(str(i), c, person.id) for i, c in enumerate(warm[1:])]
        t0, c0 = time.perf_counter(), time.process_time()
        with rt.db.transaction() as db:
            done = service.issue_batch(rt, db, actor, profile="citizen", items=items)
        issued = sum(r.ok for r in done)
        single = issued / (time.perf_counter() - t0)
        cpu_per_cert = (time.process_time() - c0) / issued * 1000
        report(f"in-process issue_batch, 1 process ({issued})", single, "certs/s",
               note=f"CPU {cpu_per_cert:.1f} ms/cert in this process (PostgreSQL's own CPU not counted), pkilint {lint_ms / cpu_per_cert:.0%} of it")

        # 2. through the API -------------------------------------------------------------------------
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def body(pem: bytes) -> bytes:
            return json.dumps({"profile": "citizen", "csr": pem.decode(), "subject_id": person.id}).encode()

        requests = [http_request("POST", "/api/v1/certificates", body=body(c), headers=auth) for c in csrs_api]
        warm_requests = [http_request("POST", "/api/v1/certificates", body=body(c), headers=auth) for c in make_csrs(40)]
        database = rt.settings.database_url.rsplit("/", 1)[-1]
        with serve(bh, workers=WORKERS) as proc:
            w = http_load(bh.port, warm_requests, concurrency=CONCURRENCY)
            if w.statuses.get(201) != len(warm_requests):
                raise RuntimeError(f"warm-up issuance failed: {w.statuses} (see {bh.home}/serve-{bh.port}.log)")
            s0 = tree_cpu(proc.pid)
            with PostgresCpu(database) as pg_api:
                api = http_load(bh.port, requests, concurrency=CONCURRENCY)
            s1 = tree_cpu(proc.pid)
        ok = api.statuses.get(201, 0)
        api_rate = ok / api.seconds
        api_server_ms, api_pg_ms = (s1 - s0) / max(ok, 1) * 1000, pg_api.seconds / max(ok, 1) * 1000

        # 3. bulk ---------------------------------------------------------------------------------------
        stamps: list[float] = []
        bulk_items = [service.BulkItem(str(i), c, person.id) for i, c in enumerate(csrs_bulk)]
        t0, k0 = time.perf_counter(), children_cpu() + time.process_time()
        with PostgresCpu(database) as pg_bulk:
            summary = bulk.issue_bulk_parallel(
                rt.settings, build_runtime, actor, profile="citizen", items=bulk_items, workers=WORKERS, batch_size=100, on_result=lambda r: stamps.append(time.perf_counter()), rt=rt
            )
        bulk_wall = time.perf_counter() - t0
        # the workers' CPU (their start-up included) + this process's (dispatching, results)
        bulk_cpu_ms = (children_cpu() + time.process_time() - k0 - pg_bulk.own_cpu) / max(summary.issued, 1) * 1000
        bulk_pg_ms = pg_bulk.seconds / max(summary.issued, 1) * 1000
        bulk_rate = summary.issued / bulk_wall
        steady = (len(stamps) - 100) / (stamps[-1] - stamps[99]) if len(stamps) > 200 else bulk_rate

        # 4. the peer -----------------------------------------------------------------------------------
        peer_rate, peer_issued = openssl_ca_rate(csrs_api, work)

        # sanity: what was stored is what was asked for
        with rt.db.read() as db:
            from sqlalchemy import func, select

            from ca.models import Certificate

            stored = db.execute(select(func.count()).select_from(Certificate).where(Certificate.status == "issued", Certificate.profile == "citizen")).scalar_one()

    heading("Issuance figures")
    report(f"API POST /api/v1/certificates ({ok}/{n_api} 201, c={CONCURRENCY})", api_rate, "certs/s", reference=peer_rate, ref_label="openssl ca")
    print(f"{'':<44} latency p50 {api.pct(50):.1f} ms, p99 {api.pct(99):.1f} ms; {api.errors} transport errors; target ≥ 400/s", flush=True)
    print(f"{'':<44} CPU per certificate: server {api_server_ms:.2f} ms + PostgreSQL {api_pg_ms:.2f} ms = {api_server_ms + api_pg_ms:.2f} ms "
          f"→ ceiling {WORKERS * 1000 / (api_server_ms + api_pg_ms):,.0f}/s on {WORKERS} cores", flush=True)
    report(f"bulk, {WORKERS} processes ({summary.issued}/{summary.total} issued)", bulk_rate, "certs/s", reference=peer_rate, ref_label="openssl ca")
    print(f"{'':<44} steady state (after the first batch) {steady:,.1f}/s; target ≥ 1,000/s", flush=True)
    print(f"{'':<44} CPU per certificate: workers {bulk_cpu_ms:.2f} ms (start-up included) + PostgreSQL {bulk_pg_ms:.2f} ms "
          f"→ ceiling {WORKERS * 1000 / (bulk_cpu_ms + bulk_pg_ms):,.0f}/s on {WORKERS} cores", flush=True)
    report(f"openssl ca, 1 process per cert, {WORKERS} lanes ({peer_issued})", peer_rate, "certs/s")
    report("API vs raw HSM signing (2 processes)", api_rate, "certs/s", reference=hsm2, ref_label="HSM signs/s")
    report("bulk vs raw HSM signing (2 processes)", bulk_rate, "certs/s", reference=hsm2, ref_label="HSM signs/s")
    print(f"issued certificates stored: {stored}", flush=True)
    cpu_ms = WORKERS * 1000 / bulk_rate
    print(
        f"bound: CPU — {WORKERS} cores give {cpu_ms:.1f} ms of CPU per bulk certificate (PostgreSQL included); "
        f"the issuing process alone needs {cpu_per_cert:.1f} ms CPU per certificate, pkilint {lint_ms:.1f} ms of it; the HSM signature {1000 / hsm1:.2f} ms. "
        f"Ceiling from CPU alone: {WORKERS * 1000 / cpu_per_cert:,.0f}/s on {WORKERS} cores.",
        flush=True,
    )
    if api.errors or ok != n_api or summary.failed:
        raise SystemExit(f"errors: api statuses {api.statuses}, transport errors {api.errors}, bulk failed {summary.failed}")


if __name__ == "__main__":
    main_guard(main)
