"""Seals, verification and the TSA (issue 6, "Speed"): ``.venv/bin/python -m bench.bench_signing``.

One throwaway platform (``bench.common.bench_home``: its own SoftHSM2 token, a PostgreSQL database,
``eauth init``), a department, a seal (EC P-256 key in the HSM) and a department system holding a
real client_credentials access token (``POST /oidc/token``) with ``seal:<id> verify``. The document
is the one-page licence of ``tests/data/signing/licence.pdf``. Rate limits are switched off for the
run (``EAUTH_RATE_LIMITS``), as for any load test.

Figures, each with its reference measured in the same run. The machine is shared with other
work, so every figure alternates: reference run, API run, three rounds back to back, and reports
the median rate and the median of the per-round ratios.

1. **PAdES B-T sealing.** Reference: pyHanko in this process with the same HSM key, the same
   visible stamp (image + CJK text + QR), the same in-process timestamper and ``bytes_reserved``
   — the signing work without the platform around it (no request, no database row, no audit
   entry). Peer: ``POST /api/v1/seals/{id}/pdf?level=B-T`` over HTTP (``ab``, keep-alive), the
   server ``eauth serve --workers 1`` (one process, like the reference) with 2 requests in
   flight, and ``--workers 2`` with 4 in flight.
2. **Verification** of a B-T licence. Reference: pyHanko's ``validate_pdf_signature`` in this
   process against our root (no fetching). Peer: ``POST /api/v1/verifications`` (our whole
   report: integrity, chain, timestamp, modification analysis, the platform's revocation register
   and CRLs, level), same two server shapes.
3. **JWS record sealing** (B-B, compact): ``seal_records`` in this process (batches of 200, one
   transaction and audit entry each), and ``POST /api/v1/seals/{id}/records`` with 200 records
   per request.
4. **TSA**: ``POST /tsa`` against the in-process ``TimestampAuthority.respond``, two ways: with
   ``ab`` (8 in flight; ``ab`` speaks HTTP/1.0, whose keep-alive uvicorn does not honour, so this
   is one TCP connection per token, as ``curl`` in a script would do) and with an HTTP/1.1
   keep-alive client (``bench.common.http_load``, 8 connections, as pyHanko's timestamper or a
   Java client with a connection pool would do); and ``openssl ts -reply`` on the same query (a
   software key: one ``openssl ts`` process per token, as a shell script would run it).

``BENCH_SIGNING_ONLY=jws,tsa`` (any of ``pdf``, ``verify``, ``jws``, ``tsa``) runs only those
figures (while working on one path; the figures in docs/performance.md come from full runs).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import ab, bench_home, heading, http_load, http_request, main_guard, report, scale, serve, tree_cpu

ROOT = Path(__file__).resolve().parent.parent
LICENCE = ROOT / "tests" / "data" / "signing" / "licence.pdf"
ONLY = {part.strip() for part in os.environ.get("BENCH_SIGNING_ONLY", "pdf,verify,jws,tsa").split(",") if part.strip()}


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else 0.0


def setup(bh) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """(seal id, client id, client secret)."""
    from identity.numbers import uscc_check_char

    body = "11460000MB1234567"
    uscc = body + uscc_check_char(body)
    bh.eauth("org", "add", "--name", "海南省市场监督管理局", "--uscc", uscc, "--type", "government")
    seal = json.loads(bh.eauth("--json", "seal", "create", "--name", "行政审批专用章", "--department", uscc).stdout)
    client = json.loads(bh.eauth("--json", "client", "add", "--name", "审批系统", "--grant", "client_credentials", "--scope", f"seal:{seal['id']}", "--scope", "verify").stdout)
    bh.eauth("seal", "allow", seal["id"], "--client", client["client_id"])
    return seal["id"], client["client_id"], client["client_secret"]


def access_token(url: str, client_id: str, secret: str, scope: str) -> str:
    r = httpx.post(url + "/oidc/token", data={"grant_type": "client_credentials", "scope": scope}, auth=(client_id, secret), timeout=30)
    r.raise_for_status()
    return r.json()["access_token"]


# -- in-process references ----------------------------------------------------------------------------


def reference_sealing(rt, seal_id: str, pdf: bytes, n: int) -> tuple[float, bytes]:  # type: ignore[no-untyped-def]
    """pyHanko + the HSM key, visible stamp, in-process timestamper, bytes_reserved: PDFs/s."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    from core import clock
    from signing import service
    from signing.models import Seal

    with rt.db.read() as db:
        row = db.get(Seal, seal_id)
        material = service._material(rt, db, row)
    timestamper = service._timestamper(rt)
    text = {"url": service.verify_url(rt, "reference"), "department": material.department, "signed_at": clock.now().strftime("%Y-%m-%d %H:%M:%S")}

    def once() -> bytes:
        meta = signers.PdfSignatureMetadata(field_name="Seal", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES)
        box = (339.0, 36.0, 559.0, 120.0)
        signer = signers.PdfSigner(meta, signer=material.signer, timestamper=timestamper, stamp_style=material.style, new_field_spec=fields.SigFieldSpec("Seal", on_page=-1, box=box))
        out = signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False), bytes_reserved=material.bytes_reserved, appearance_text_params=text)
        return out.getvalue()

    for _ in range(3):
        last = once()
    t0 = time.perf_counter()
    for _ in range(n):
        last = once()
    return _rate(n, time.perf_counter() - t0), last


def reference_validation(rt, sealed: bytes, n: int) -> float:  # type: ignore[no-untyped-def]
    """pyHanko validate_pdf_signature against our root, no fetching: validations/s."""
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from ca import service as ca_service

    with rt.db.read() as db:
        chain = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in ca_service.ca_chain(rt, db)]

    def once() -> None:
        vc = ValidationContext(trust_roots=[chain[-1]], other_certs=chain[:-1], allow_fetching=False, revocation_mode="soft-fail")
        reader = PdfFileReader(io.BytesIO(sealed), strict=False)
        status = validate_pdf_signature(reader.embedded_signatures[0], signer_validation_context=vc, ts_validation_context=vc)
        assert status.intact and status.valid and status.trusted, status.summary()

    for _ in range(3):
        once()
    t0 = time.perf_counter()
    for _ in range(n):
        once()
    return _rate(n, time.perf_counter() - t0)


def inprocess_jws(rt, seal_id: str, n: int, batch: int) -> float:  # type: ignore[no-untyped-def]
    from core.security import Actor
    from signing import service

    records = [{"licence_no": f"JY146010000{i:05d}", "holder": "海口市示范科技有限公司", "valid_until": "2031-12-31"} for i in range(batch)]
    with rt.db.transaction() as db:
        service.seal_records(rt, db, Actor.cli(), seal_id=seal_id, records_=records[:10])
    t0 = time.perf_counter()
    done = 0
    while done < n:
        with rt.db.transaction() as db:
            done += len(service.seal_records(rt, db, Actor.cli(), seal_id=seal_id, records_=records))
    return _rate(done, time.perf_counter() - t0)


def inprocess_tsa(rt, query: bytes, n: int) -> float:  # type: ignore[no-untyped-def]
    from signing import service

    authority = service.tsa_authority(rt)
    t0 = time.perf_counter()
    for _ in range(n):
        authority.respond(query)
    return _rate(n, time.perf_counter() - t0)


# -- HTTP ---------------------------------------------------------------------------------------------


async def _post_many(url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int) -> tuple[int, float, dict[int, int]]:
    statuses: dict[int, int] = {}
    queue = list(bodies)
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                r = await client.post(url, content=body, headers=headers)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(bodies), time.perf_counter() - t0, statuses


def openssl_tsa_files(work: Path) -> tuple[Path, Path, Path]:
    """A software TSA key + certificate (critical timeStamping EKU) and an openssl.cnf for ``ts -reply``."""
    key, cert, cnf = work / "tsa.key", work / "tsa.pem", work / "tsa.cnf"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True, capture_output=True)
    ext = work / "ext.cnf"
    ext.write_text("[v3]\nextendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\n")
    subprocess.run(["openssl", "req", "-new", "-x509", "-key", str(key), "-out", str(cert), "-days", "30", "-subj", "/CN=openssl TSA", "-extensions", "v3", "-config", str(ext)], check=True, capture_output=True)
    cnf.write_text(
        f"""[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = {work / 'serial'}
signer_cert = {cert}
signer_key = {key}
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
crypto_device = builtin
"""
    )
    (work / "serial").write_text("01\n")
    return key, cert, cnf


def main() -> None:
    rounds = scale(3, 1)
    n_seal = scale(100, 20)  # per round, each side
    n_verify = scale(100, 20)
    n_jws = scale(5_000, 1_000)
    n_tsa = scale(6_000, 1_000)
    n_openssl = scale(300, 50)
    heading("Signing — PAdES sealing, verification, JWS records, TSA")
    print(f"{rounds} rounds per figure; each round measures the in-process reference, then the API, back to back", flush=True)
    pdf = LICENCE.read_bytes()
    with bench_home(rate_limits="tsa=off,seal=off,verify_page=off,verification=off") as bh, tempfile.TemporaryDirectory(prefix="eauth-bench-signing-") as tmp:
        work = Path(tmp)
        seal_id, client_id, secret = setup(bh)
        rt = bh.runtime()
        from signing.rfc3161 import build_query

        query = build_query(hashlib.sha256(b"bench").digest(), nonce=None, cert_req=True)
        tsq = work / "q.tsq"
        tsq.write_bytes(query)
        pdf_file = work / "licence.pdf"
        pdf_file.write_bytes(pdf)
        _, ref_pdf = reference_sealing(rt, seal_id, pdf, 2)
        summary: list[tuple[str, float, float, str, str, str, str]] = []
        idle_rate = [0.0]

        def compare(label: str, unit: str, ref_label: str, reference, api, ops: tuple[int, int], server) -> None:  # type: ignore[no-untyped-def]
            """Alternate reference and API runs (the machine is shared: load moves between
            minutes, so each ratio compares two runs taken seconds apart); report medians. Also the
            CPU time per operation — of this process for the reference, of the server's processes
            for the API — which the other load on the machine does not inflate."""
            refs, apis, ratios, notes, ref_cpu, api_cpu = [], [], [], "", [], []
            for _ in range(rounds):
                c0 = time.process_time()
                r = reference()
                ref_cpu.append((time.process_time() - c0) / ops[0] * 1000)
                c0, t0 = tree_cpu(server.pid), time.perf_counter()
                a, notes = api()
                busy = tree_cpu(server.pid) - c0 - idle_rate[0] * (time.perf_counter() - t0)  # net of the server's background threads
                api_cpu.append(max(busy, 0.0) / ops[1] * 1000)
                refs.append(r)
                apis.append(a)
                ratios.append(a / r if r else 0.0)
            ref_m, api_m, ratio_m = statistics.median(refs), statistics.median(apis), statistics.median(ratios)
            cpu = f"CPU {statistics.median(api_cpu):.2f} ms/op server vs {statistics.median(ref_cpu):.2f} ms/op in-process"
            line = f"{label:<44} {api_m:>11,.1f} {unit}   = {ratio_m:.2f}× {ref_label} ({ref_m:,.1f} {unit})   [median of {rounds}; ratios {', '.join(f'{x:.2f}' for x in ratios)}; {notes}; {cpu}]"
            print(line, flush=True)
            summary.append((label, api_m, ref_m, unit, ref_label, f"{ratio_m:.2f}", cpu))

        for workers, concurrency in ((1, 2), (2, 4)):
            heading(f"eauth serve --workers {workers}, {concurrency} requests in flight")
            with serve(bh, workers=workers) as server:
                token = access_token(bh.url, client_id, secret, f"seal:{seal_id} verify")
                auth = f"Authorization: Bearer {token}"
                bearer = {"Authorization": f"Bearer {token}"}
                seal_url = f"{bh.url}/api/v1/seals/{seal_id}/pdf?level=B-T"
                verify_url = f"{bh.url}/api/v1/verifications"
                records_url = f"{bh.url}/api/v1/seals/{seal_id}/records"
                tsa_url = f"{bh.url}/tsa"

                sealed = httpx.post(seal_url, content=pdf, headers=bearer | {"Content-Type": "application/pdf"}, timeout=60)
                sealed.raise_for_status()
                sealed_file = work / "sealed.pdf"
                sealed_file.write_bytes(sealed.content)
                check = httpx.post(verify_url, content=sealed.content, headers=bearer | {"Content-Type": "application/pdf"}, timeout=60).json()
                assert check["indication"] == "TOTAL-PASSED" and check["signatures"][0]["level"] == "B-T", check
                warm = max(4, 4 * workers)
                ab(seal_url, n=warm, c=concurrency, post_file=pdf_file, content_type="application/pdf", headers=[auth], keep_alive=True)
                ab(verify_url, n=warm, c=concurrency, post_file=sealed_file, content_type="application/pdf", headers=[auth], keep_alive=True)
                ab(tsa_url, n=500, c=8, post_file=tsq, content_type="application/timestamp-query", keep_alive=True)
                # the server's own background work (CRL/OCSP publisher, revocation polls) while idle
                c0, t0 = tree_cpu(server.pid), time.perf_counter()
                time.sleep(5)
                idle_rate[0] = (tree_cpu(server.pid) - c0) / (time.perf_counter() - t0)
                print(f"server CPU while idle: {idle_rate[0] * 1000:.1f} ms/s (subtracted from the API CPU figures)", flush=True)

                def api_ab(url: str, n: int, c: int, body: Path, ctype: str, headers: list[str]):  # type: ignore[no-untyped-def]
                    def run() -> tuple[float, str]:
                        res = ab(url, n=n, c=c, post_file=body, content_type=ctype, headers=headers, keep_alive=True)
                        assert res.non_2xx == 0, f"{res.non_2xx} non-2xx answers from {url}"
                        return res.rate, f"p50 {res.p50_ms:.0f} ms, p99 {res.p99_ms:.0f} ms"

                    return run

                if "pdf" in ONLY:
                    compare(f"API sealing B-T (w={workers}, c={concurrency})", "PDFs/s", "pyHanko in-process",
                            lambda: reference_sealing(rt, seal_id, pdf, n_seal)[0], api_ab(seal_url, n_seal, concurrency, pdf_file, "application/pdf", [auth]), (n_seal + 3, n_seal), server)
                if "verify" in ONLY:
                    compare(f"API verification (w={workers}, c={concurrency})", "PDFs/s", "pyHanko validation",
                            lambda: reference_validation(rt, ref_pdf, n_verify), api_ab(verify_url, n_verify, concurrency, sealed_file, "application/pdf", [auth]), (n_verify + 3, n_verify), server)

                body = json.dumps({"records": [{"licence_no": f"JY146010000{i:05d}", "holder": "海口市示范科技有限公司"} for i in range(200)]}).encode()

                def api_jws() -> tuple[float, str]:
                    batches = max(concurrency, n_jws // 200)
                    n, seconds, statuses = asyncio.run(_post_many(records_url, [body] * batches, bearer | {"Content-Type": "application/json"}, concurrency))
                    assert statuses == {200: batches}, statuses
                    return _rate(n * 200, seconds), "200 records per request"

                jws_api_ops = max(concurrency, n_jws // 200) * 200
                if "jws" in ONLY:
                    compare(f"API JWS records (w={workers}, c={concurrency})", "records/s", "seal_records in-process", lambda: inprocess_jws(rt, seal_id, n_jws, 200), api_jws, (n_jws + 10, jws_api_ops), server)
                if "tsa" in ONLY:
                    compare(f"TSA over HTTP, ab: connection per token (w={workers}, c=8)", "tokens/s", "respond() in-process",
                            lambda: inprocess_tsa(rt, query, n_tsa), api_ab(tsa_url, n_tsa, 8, tsq, "application/timestamp-query", []), (n_tsa, n_tsa), server)
                    tsa_requests = [http_request("POST", "/tsa", body=query, headers={"Content-Type": "application/timestamp-query"})] * n_tsa

                    def api_keepalive() -> tuple[float, str]:
                        res = http_load(bh.port, tsa_requests, concurrency=8)
                        assert res.statuses == {200: n_tsa} and res.errors == 0, (res.statuses, res.errors)
                        return res.rate, f"p50 {res.pct(50):.0f} ms, p99 {res.pct(99):.0f} ms"

                    compare(f"TSA over HTTP, keep-alive (w={workers}, c=8)", "tokens/s", "respond() in-process",
                            lambda: inprocess_tsa(rt, query, n_tsa), api_keepalive, (n_tsa, n_tsa), server)

        # openssl ts -reply on the same query, one process per token
        if "tsa" not in ONLY:
            _summary(summary)
            return
        heading("peer: openssl ts -reply")
        _, _, cnf = openssl_tsa_files(work)
        t0 = time.perf_counter()
        for _ in range(n_openssl):
            done = subprocess.run(["openssl", "ts", "-reply", "-config", str(cnf), "-queryfile", str(tsq), "-out", str(work / "r.tsr")], capture_output=True)
            assert done.returncode == 0, done.stderr
        openssl_rate = _rate(n_openssl, time.perf_counter() - t0)
        report("openssl ts -reply (process per token)", openssl_rate, "tokens/s", note=f"{n_openssl} tokens, software key")
        best_tsa = max(api for label, api, *_ in summary if label.startswith("TSA"))  # either client
        report("TSA over HTTP (best) vs openssl ts -reply", best_tsa, "tokens/s", reference=openssl_rate, ref_label="openssl ts -reply")

        _summary(summary)


def _summary(summary: list[tuple[str, float, float, str, str, str, str]]) -> None:
    heading("summary (medians)")
    for label, api_m, ref_m, unit, ref_label, ratio, cpu in summary:
        print(f"| {label} | {api_m:,.1f} {unit} | {ref_m:,.1f} ({ref_label}) | {ratio}× | {cpu} |", flush=True)


if __name__ == "__main__":
    main_guard(main)
