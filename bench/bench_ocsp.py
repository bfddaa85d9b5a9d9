"""OCSP responder over loopback against ``openssl ocsp`` (issue 4, "Speed").

Set-up (timed, but not part of the figures):

- 100,000 certificates of the issuing CA inserted straight into ``ca_certificates`` with
  PostgreSQL ``COPY`` (status ``issued``, random 126-bit serials as ``ca.hierarchy.new_serial``
  makes them). The responder reads only issuer, serial and status, so the rows carry no signed
  certificate: issuing 100,000 real ones would take longer than the whole benchmark.
- Their responses pre-signed in the HSM by ``ca.ocsp.presign_missing`` — the publisher's own code
  path — in two processes (each takes half of the rows by ``created_at``).
- The peer: ``openssl ocsp -index … -port … -multi 2`` with the same 100,000 serials in its index
  file, the same issuing CA certificate (so it answers the same CertIDs) and a software EC P-256
  responder key (it signs every response as it is asked).

Load (one TCP connection per request — ``openssl ocsp`` closes after each answer):

1. Against both, with ``bench.common.http_load`` (the same pre-built requests for each target,
   8 connections at a time): random serials, every request a different one of the 100,000 —
   GET twice over the same serials, then POST, from one generator process; GET and POST again
   from two generator processes (4 connections each); then GET at a fixed 1,000 requests/s (open
   loop, latency from each request's scheduled time): p50/p99. eAuth's workers load the
   pre-signed responses into their caches at start (``ca.ocsp.warm_cache``); the benchmark waits
   15 s for it.

   Why two generator set-ups: one Python generator process spends ≈ 55–65 µs of CPU per request
   (a new connection each time), more than either server (eAuth ≈ 40 µs, openssl ≈ 50 µs), so
   with one generator process the figure is the generator's own ceiling on its core, and what
   separates the two servers is how much the *generator* spends per answer from each. Two
   generator processes saturate both cores: the figure is then what the machine sustains, set by
   server + generator CPU per answer. Both are printed, with each side's CPU per answer and the
   generator's, and neither is hidden; the ratio for each load is best set-up against best set-up.
2. ``ab`` (Apache Bench, the issue's load generator; C, ≈ half the CPU per request of the Python
   generator) GET and POST against both, every set-up: ``ab`` repeats one request, so it runs
   once per serial for a sample of random serials and the figures add the runs up. An earlier
   machine's OpenSSL 3.0 responder stalled on the connection ``ab`` closes unused at the end of a
   run (a child spinning on ``read() == 0``); ``ab -s 10`` gives up on such a run, the run is
   counted as stalled, and a set-up with a stalled run is left out of the comparison and named.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import datetime
import io
import multiprocessing
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bench.common import (
    ab,
    bench_home,
    free_port,
    heading,
    http_load,
    http_request,
    main_guard,
    process_group,
    report,
    scale,
    serve,
    tree_cpu,
)

WORKERS = 2
AB_CONCURRENCY = 8
AB_LOW_CONCURRENCY = 2


# -- data ----------------------------------------------------------------------------------------------------


def insert_certificates(db_url: str, issuer: str, n: int) -> list[int]:
    """``n`` issued certificates of ``issuer`` by COPY; returns their serials."""
    import psycopg

    from ca.hierarchy import new_serial

    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    not_before = (now - datetime.timedelta(minutes=5)).isoformat()
    not_after = (now + datetime.timedelta(days=730)).isoformat()
    serials = [new_serial() for _ in range(n)]
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY ca_certificates (serial, issuer, profile, subject_dn, status, not_before, not_after, spki_sha256, requested_by, created_at) FROM STDIN"
        ) as copy:
            for i, s in enumerate(serials):
                created = (now + datetime.timedelta(microseconds=i)).isoformat(timespec="microseconds")
                copy.write_row((format(s, "x"), issuer, "citizen", f"CN=bench {i}", "issued", not_before, not_after, os.urandom(32).hex(), "cli:bench", created))
    return serials


def _presign(env: dict[str, str], since: str, until: str | None) -> int:
    """Pre-sign missing responses from ``since`` (publisher code path) until ``until``."""
    os.environ.update(env)
    from ca import ocsp
    from core.settings import load_settings
    from eauth.runtime import build_runtime

    rt = build_runtime(load_settings())
    total = 0
    try:
        while True:
            count, newest = ocsp.presign_missing(rt, since=since, limit=2000)
            total += count
            if count == 0 or (until is not None and newest >= until):
                return total
            since = newest
    finally:
        rt.db.dispose()
        rt.token.close()


def presign_all(env: dict[str, str], first_created: str, middle_created: str, processes: int = WORKERS) -> int:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        halves = [pool.submit(_presign, env, first_created, middle_created), pool.submit(_presign, env, middle_created, None)]
        return sum(f.result() for f in halves)


# -- requests --------------------------------------------------------------------------------------------------


def ocsp_request(issuer: x509.Certificate, serial: int) -> bytes:
    """An RFC 5019 request: SHA-1 CertID, no nonce (the form responders answer from pre-signed copies)."""
    name_hash = hashes.Hash(hashes.SHA1())
    name_hash.update(issuer.subject.public_bytes())
    key_hash = hashes.Hash(hashes.SHA1())
    key_hash.update(issuer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))  # type: ignore[attr-defined]
    req = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(name_hash.finalize(), key_hash.finalize(), serial, hashes.SHA1()).build()
    return req.public_bytes(serialization.Encoding.DER)


def get_path(der: bytes, base: str = "/ocsp/") -> str:
    """RFC 6960 Appendix A.1: the URL-encoded base64 of the DER request appended to the
    responder's URL — ``/ocsp/`` for eAuth (the AIA URL), ``/`` for ``openssl ocsp``."""
    return base + quote(base64.b64encode(der).decode(), safe="")


def check_good(body: bytes, serial: int) -> None:
    resp = x509_ocsp.load_der_ocsp_response(body)
    if resp.response_status != x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise RuntimeError(f"OCSP status {resp.response_status}")
    if resp.serial_number != serial or resp.certificate_status != x509_ocsp.OCSPCertStatus.GOOD:
        raise RuntimeError(f"serial {serial:x}: {resp.certificate_status}")


# -- the peer ---------------------------------------------------------------------------------------------------


def write_peer_files(work: Path, issuer: x509.Certificate, serials: list[int]) -> tuple[Path, Path, Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"), x509.NameAttribute(NameOID.COMMON_NAME, "openssl ocsp peer responder")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    rkey, rcert, ca, index = work / "rkey.pem", work / "rcert.pem", work / "issuing.pem", work / "index.txt"
    rkey.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    rcert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca.write_bytes(issuer.public_bytes(serialization.Encoding.PEM))
    expiry = (now + datetime.timedelta(days=730)).strftime("%y%m%d%H%M%SZ")
    buf = io.StringIO()
    for i, s in enumerate(serials):
        hexs = format(s, "X")
        if len(hexs) % 2:
            hexs = "0" + hexs  # as BN_bn2hex prints it: whole octets
        buf.write(f"V\t{expiry}\t\t{hexs}\tunknown\t/CN=bench {i}\n")
    index.write_text(buf.getvalue())
    return rkey, rcert, ca, index


def wait_for_ocsp(url: str, der: bytes, proc: subprocess.Popen, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            httpx.post(url, content=der, headers={"Content-Type": "application/ocsp-request", "Connection": "close"}, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"no OCSP answer at {url}")


# -- measuring ----------------------------------------------------------------------------------------------------


def ab_over_serials(url: str, base: str, ders: list[bytes], *, post: bool, n_each: int, c: int, work: Path) -> tuple[float, float, float, int, int]:
    """ab once per request; (requests/s over all runs, p50 ms, p99 ms, failures, runs that stalled)."""
    total = 0
    seconds = 0.0
    lat: list[float] = []
    failed = 0
    stalled = 0
    for i, der in enumerate(ders):
        try:
            if post:
                f = work / f"req{i}.der"
                f.write_bytes(der)
                r = ab(url + (base.rstrip("/") or "/"), n=n_each, c=c, post_file=f, content_type="application/ocsp-request")
            else:
                r = ab(url + get_path(der, base), n=n_each, c=c)
        except RuntimeError as exc:  # ab gives up on a request unanswered for 10 s: the whole run
            print(f"    ab run {i} ({'POST' if post else 'GET'}) against {url} aborted: {exc}", flush=True)
            stalled = len(ders) - i  # a stalled responder stays stalled: the remaining runs are not tried
            break
        total += r.requests
        seconds += r.seconds
        lat += r.latencies_ms
        failed += r.failed + r.non_2xx
    from bench.common import percentiles

    pct = percentiles(lat, (50, 99))
    return (total / seconds if seconds else 0.0), pct[50], pct[99], failed, stalled


def main() -> None:
    n_certs = scale(100_000, 5_000)
    n_ab_serials = scale(10, 4)
    n_ab_each = scale(5000, 500)
    n_random = scale(10_000, 2_000)
    paced_seconds = scale(10, 3)
    heading(f"OCSP — {n_certs:,} issued certificates, eauth serve --workers {WORKERS} and 1 --only ocsp,crl vs openssl ocsp (1 process and -multi {WORKERS})")

    with bench_home() as bh, tempfile.TemporaryDirectory(prefix="eauth-bench-ocsp-") as tmp:
        work = Path(tmp)
        rt = bh.runtime()
        from ca import service

        with rt.db.read() as db:
            authority = service.issuing_ca(rt, db)
        issuer_cert = authority.certificate

        t0 = time.perf_counter()
        serials = insert_certificates(bh.db_url, authority.name, n_certs)
        t_insert = time.perf_counter() - t0
        with rt.db.read() as db:
            from sqlalchemy import func, select

            from ca.models import Certificate

            first, middle = (
                db.execute(select(func.min(Certificate.created_at)).where(Certificate.requested_by == "cli:bench")).scalar_one(),
                db.execute(
                    select(Certificate.created_at).where(Certificate.requested_by == "cli:bench").order_by(Certificate.created_at).offset(n_certs // 2).limit(1)
                ).scalar_one(),
            )
        t0 = time.perf_counter()
        env = {k: v for k, v in bh.env.items() if k.startswith("EAUTH_")}
        signed = presign_all(env, first, middle)
        t_sign = time.perf_counter() - t0
        report(f"inserted {n_certs:,} certificate rows (COPY)", n_certs / t_insert, "rows/s")
        report(f"pre-signed {signed:,} responses in the HSM, {WORKERS} proc.", signed / t_sign, "responses/s", note=f"{t_sign:.1f} s")
        if signed < n_certs:
            raise SystemExit(f"only {signed} of {n_certs} responses pre-signed")

        rng = random.Random(4)
        ab_serials = rng.sample(serials, n_ab_serials)
        ab_ders = [ocsp_request(issuer_cert, s) for s in ab_serials]
        random_serials = [rng.choice(serials) for _ in range(n_random)]
        random_ders = [ocsp_request(issuer_cert, s) for s in random_serials]
        paced_ders = [ocsp_request(issuer_cert, rng.choice(serials)) for _ in range(1000 * paced_seconds)]

        rkey, rcert, ca_pem, index = write_peer_files(work, issuer_cert, serials)
        results: dict[str, dict[str, object]] = {}

        def measure(name: str, port: int, base: str, *, use_ab: bool, pid: int) -> None:
            url = f"http://127.0.0.1:{port}"
            import httpx

            post_path = base.rstrip("/") or "/"
            # Both answer "good" for our serials, GET and POST. "Connection: close" everywhere: an
            # openssl ocsp 3.0 child whose keep-alive client hangs up spins and serves no one again.
            for s, d in zip(ab_serials[:2], ab_ders[:2], strict=True):
                check_good(httpx.get(url + get_path(d, base), headers={"Connection": "close"}, timeout=10).content, s)
                check_good(httpx.post(url + post_path, content=d, headers={"Content-Type": "application/ocsp-request", "Connection": "close"}, timeout=10).content, s)
            random_get = [http_request("GET", get_path(d, base), keep_alive=False) for d in random_ders]
            random_post = [
                http_request("POST", post_path, body=d, headers={"Content-Type": "application/ocsp-request"}, keep_alive=False) for d in random_ders
            ]
            paced = [http_request("GET", get_path(d, base), keep_alive=False) for d in paced_ders]
            out: dict[str, object] = {}
            cold = http_load(port, random_get, concurrency=8, keep_alive=False)

            def timed(reqs: list[bytes], processes: int) -> tuple[object, float]:
                cpu0 = tree_cpu(pid)
                r = http_load(port, reqs, concurrency=8, keep_alive=False, processes=processes)
                return r, (tree_cpu(pid) - cpu0) / max(1, r.statuses.get(200, 0)) * 1e6

            warm, out["cpu_us"] = timed(random_get, 1)
            post, out["cpu_post_us"] = timed(random_post, 1)
            get2, out["cpu_get2_us"] = timed(random_get, 2)
            post2, out["cpu_post2_us"] = timed(random_post, 2)
            steady = http_load(port, paced, concurrency=64, rate=1000, keep_alive=False)
            out.update(cold=cold, warm=warm, post=post, get2=get2, post2=post2, paced=steady)
            if use_ab:  # last: a peer that ab stalls (see the module docstring) has had its other loads
                for d in ab_ders:  # warm: every worker has seen the ab serials
                    with contextlib.suppress(RuntimeError):
                        ab(url + get_path(d, base), n=50, c=4)
                runs = (
                    ("ab_get", ab_ders, False, AB_CONCURRENCY),
                    ("ab_post", ab_ders, True, AB_CONCURRENCY),
                    ("ab_get_low", ab_ders[: max(2, len(ab_ders) // 4)], False, AB_LOW_CONCURRENCY),
                )
                stalled = False
                for key, ders, is_post, conc in runs:
                    if stalled:
                        out[key] = (0.0, 0.0, 0.0, 0, len(ders))
                        continue
                    out[key] = ab_over_serials(url, base, ders, post=is_post, n_each=n_ab_each, c=conc, work=work)
                    stalled = out[key][4] > 0  # type: ignore[index]
            results[name] = out

        # Ours as deployed (2 workers, the figure the issue names) and as one process like the
        # single-process peer: each side's better set-up is compared with the other's.
        for workers in (WORKERS, 1):
            with serve(bh, workers=workers, only="ocsp,crl") as server:
                time.sleep(scale(15, 3))  # each worker's publisher thread loads the pre-signed responses (ca.ocsp.warm_cache)
                measure(f"eauth --workers {workers}", bh.port, "/ocsp/", use_ab=True, pid=server.pid)

        # The peer as the issue states it (one process), and with -multi so it also has both cores.
        for peer_name, extra in ((f"openssl -multi {WORKERS}", ["-multi", str(WORKERS)]), ("openssl", [])):
            peer_port = free_port()
            args = ["openssl", "ocsp", "-index", str(index), "-port", str(peer_port), "-rsigner", str(rcert), "-rkey", str(rkey), "-CA", str(ca_pem), "-nmin", "240", *extra]
            with process_group(args, own_group=bool(extra), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
                # No bare TCP probe (wait_for_port): openssl ocsp blocks on a connection that
                # closes without a request, which would stall the single-process peer.
                wait_for_ocsp(f"http://127.0.0.1:{peer_port}/", ab_ders[0], proc)
                # ab last (inside measure): an OpenSSL 3.0 responder child that accepted a
                # connection closed without a request (ab does that at the end of a run) was seen
                # spinning on read() == 0 for good on an earlier machine; stalled runs are counted.
                measure(peer_name, peer_port, "/", use_ab=True, pid=proc.pid)

    heading("OCSP figures (responses/s; latency p50 / p99 in ms; ratio against the faster openssl set-up)")
    mine = {k: v for k, v in results.items() if k.startswith("eauth")}
    peers = {k: v for k, v in results.items() if not k.startswith("eauth")}
    ours = mine[f"eauth --workers {WORKERS}"]

    def best(key: str, rate, among: dict[str, dict[str, object]] = peers) -> tuple[str, object]:  # type: ignore[no-untyped-def]
        name = max(among, key=lambda k: rate(among[k][key]))
        return name, among[name][key]

    # ab (C, the load generator) against both. A set-up any of whose ab runs stalled is
    # left out of the comparison (and named), so a stalled peer cannot flatter the ratio.
    for key, label in (("ab_get", f"ab GET, c={AB_CONCURRENCY}"), ("ab_post", f"ab POST, c={AB_CONCURRENCY}"), ("ab_get_low", f"ab GET, c={AB_LOW_CONCURRENCY}")):
        clean_mine = {k: v for k, v in mine.items() if v[key][4] == 0}  # type: ignore[index]
        clean_peers = {k: v for k, v in peers.items() if v[key][4] == 0}  # type: ignore[index]
        n_serials = len(ab_ders) if key != "ab_get_low" else max(2, len(ab_ders) // 4)
        title = f"{label} ({n_serials} serials × {n_ab_each})"
        if clean_mine and clean_peers:
            oname, o = best(key, lambda r: r[0], clean_mine)
            pname, p = best(key, lambda r: r[0], clean_peers)
            report(title, o[0], "resp/s", reference=p[0], ref_label=pname, note=oname)  # type: ignore[index]
        else:
            print(f"{title}: no comparison — every set-up of one side stalled", flush=True)
        for side in (mine, peers):
            for sn, sv in side.items():
                rate, p50, p99, failed, stalled = sv[key]  # type: ignore[misc]
                if stalled and not rate:
                    print(f"{'':<44} {sn}: stalled ({stalled} run(s); left out)", flush=True)
                    continue
                extra = f", {stalled} run(s) stalled (left out)" if stalled else ""
                print(f"{'':<44} {sn}: {rate:,.0f}/s, p50 {p50:.0f} / p99 {p99:.0f} ms, failed {failed}{extra} (ab has 1 ms resolution)", flush=True)
    server_cpu = {"warm": "cpu_us", "post": "cpu_post_us", "get2": "cpu_get2_us", "post2": "cpu_post2_us"}
    for key, label in (
        ("cold", "random serials GET, pass 1, 1 generator"),
        ("warm", "random serials GET, pass 2, 1 generator"),
        ("post", "random serials POST, 1 generator"),
        ("get2", "random serials GET, 2 generator processes"),
        ("post2", "random serials POST, 2 generator processes"),
    ):
        oname, o = best(key, lambda r: r.rate, mine)
        name, p = best(key, lambda r: r.rate)
        report(f"{label} ({n_random:,}, c=8)", o.rate, "resp/s", reference=p.rate, ref_label=name, note=oname)  # type: ignore[attr-defined]
        for side in (mine, peers):
            for sn, sv in side.items():
                m = sv[key]
                cpu = f", CPU per answer: server {sv[server_cpu[key]]:.0f} µs, generator {m.cpu_per_request_us:.0f} µs" if key in server_cpu else ""  # type: ignore[attr-defined]
                print(f"{'':<44} {sn}: {m.rate:,.0f}/s, p50 {m.pct(50):.1f} / p99 {m.pct(99):.1f} ms {dict(m.statuses)} err {m.errors}{cpu}", flush=True)  # type: ignore[attr-defined]
    cpu = {k: v["cpu_us"] for k, v in results.items()}
    name = min(peers, key=lambda k: cpu[k])
    for on in mine:
        report(f"server CPU per response, {on}", cpu[on], "µs", reference=cpu[name], ref_label=name,  # type: ignore[arg-type]
               note="server processes' user+system time / responses (GET pass 2)")
    o = ours["paced"]
    name, p = best("paced", lambda r: -r.pct(99))
    report("paced 1,000 req/s GET, p99 latency", o.pct(99), "ms", reference=p.pct(99), ref_label=f"{name} p99")  # type: ignore[attr-defined]
    print(f"{'':<44} eauth --workers {WORKERS} p50 {o.pct(50):.1f} ms, achieved {o.rate:,.0f}/s, {o.errors} errors; target p99 ≤ 10 ms", flush=True)  # type: ignore[attr-defined]
    for pn, pv in peers.items():
        p = pv["paced"]
        print(f"{'':<44} {pn}: p50 {p.pct(50):.1f} / p99 {p.pct(99):.1f} ms, achieved {p.rate:,.0f}/s, {p.errors} errors", flush=True)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main_guard(main)
