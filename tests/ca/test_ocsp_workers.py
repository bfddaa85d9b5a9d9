"""A revocation through one worker process is answered by every worker within a second.

`eauth serve --workers 2` (real processes, each with its own OCSP cache), caches warmed through
both, then revocations through the API: each is timed from the API's answer (the commit) until
new connections — spread over both workers — all say `revoked`, checked with cryptography's OCSP
parser and, at the end, `openssl ocsp`.
"""

from __future__ import annotations

import base64
import json
import statistics
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from tests.conftest import ROOT, CliHome, free_port
from tests.factories import unique_id_number
from tests.reliability.actors import make_csr

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROUNDS = 5


def test_revocation_visible_in_every_worker_within_a_second(cli_home: CliHome, tmp_path: Path) -> None:
    port = free_port()
    cli_home.env["EAUTH_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    cli_home.run("init")
    person = json.loads(cli_home.run("--json", "person", "add", "--name", "孙八", "--id-number", unique_id_number()).stdout)["id"]
    client = json.loads(
        cli_home.run("--json", "client", "add", "--name", "吊销测试", "--grant", "client_credentials", "--scope", "certificates:write", "--scope", "certificates:revoke").stdout
    )
    # The server's log goes to a file, not a pipe: a pipe nobody drains blocks a chatty server, and
    # reading it for an assertion message blocks until the server exits (the test hung to its timeout).
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "eauth"), "serve", "--port", str(port), "--workers", "2"], env=cli_home.env, stdout=subprocess.DEVNULL, stderr=log)
    latencies: list[float] = []
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.time() < deadline, log_path.read_text(errors="replace")[-2000:]
            time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=30) as api:
            token = api.post("/oidc/token", data={"grant_type": "client_credentials", "scope": "certificates:write certificates:revoke"}, auth=(client["client_id"], client["client_secret"])).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            issuer = x509.load_der_x509_certificate(api.get("/ca/public-service.cer").content)
            certs = []
            for _ in range(ROUNDS):
                r = api.post("/api/v1/certificates", json={"profile": "citizen", "csr": make_csr(), "subject_id": person}, headers=auth)
                assert r.status_code == 201, r.text
                certs.append(x509.load_pem_x509_certificate(r.json()["pem"].encode()))

            def status(cert: x509.Certificate) -> x509_ocsp.OCSPCertStatus:
                req = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)
                # a new connection each time, so the kernel spreads requests over both workers
                r = httpx.get(f"{base}/ocsp/{quote(base64.b64encode(req).decode(), safe='')}", timeout=10, headers={"Connection": "close"})
                assert r.status_code == 200 and r.headers["content-type"] == "application/ocsp-response"
                return x509_ocsp.load_der_ocsp_response(r.content).certificate_status

            for cert in certs:  # warm both workers' caches with `good`
                assert all(status(cert) == x509_ocsp.OCSPCertStatus.GOOD for _ in range(10))
            for cert in certs:
                r = api.post(f"/api/v1/certificates/{format(cert.serial_number, 'x')}/revoke", json={"reason": "keyCompromise"}, headers=auth)
                assert r.status_code == 200, r.text
                committed = time.perf_counter()
                consecutive, last_stale = 0, committed
                while consecutive < 10:  # ten answers in a row, over new connections, all `revoked`
                    asked = time.perf_counter()
                    if status(cert) == x509_ocsp.OCSPCertStatus.REVOKED:
                        consecutive += 1
                    else:
                        consecutive, last_stale = 0, asked  # a stale answer to a request sent at `asked`
                    assert time.perf_counter() - committed < 10, "revocation never became visible"
                # every request sent after `last_stale` was answered `revoked`: that bounds the delay
                latencies.append(last_stale - committed)
        leaf, issuing = tmp_path / "leaf.pem", tmp_path / "issuing.pem"
        leaf.write_bytes(certs[-1].public_bytes(serialization.Encoding.PEM))
        issuing.write_bytes(issuer.public_bytes(serialization.Encoding.PEM))
        done = subprocess.run(["openssl", "ocsp", "-issuer", str(issuing), "-cert", str(leaf), "-url", f"{base}/ocsp", "-noverify", "-no_nonce"], capture_output=True, text=True, timeout=60)
        assert ": revoked" in done.stdout and "keyCompromise" in done.stdout, done.stdout + done.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    print(f"\nrevocation → every worker answers revoked: {', '.join(f'{x * 1000:.0f} ms' for x in latencies)} (last stale answer after the commit; 0 = none)")
    # Workers poll for changes every 0.2 s.
    assert statistics.median(latencies) < 1.0, latencies
