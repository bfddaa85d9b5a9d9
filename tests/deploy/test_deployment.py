"""The production shape on loopback: nginx (the repo's deploy/nginx/eauth.conf, rendered) with TLS in
front of `eauth serve --workers 2` on PostgreSQL, then the SSO and OCSP checks through it.

Independent clients only: httpx + joserfc for OpenID Connect, `openssl ocsp` for status, nginx's
own cache status header for the RFC 5019 caching path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.auth_service.agent import Agent
from tests.conftest import ROOT, CliHome, free_port, postgres_database
from tests.factories import unique_id_number
from tests.reliability.actors import make_csr

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "Haikou-Deploy-2026!"


def render_site(tmp: Path, *, http_port: int, https_port: int, app_port: int, cert: Path, key: Path, client_ca: Path) -> Path:
    text = (ROOT / "deploy" / "nginx" / "eauth.conf").read_text()
    values = {
        "@UPSTREAM@": f"127.0.0.1:{app_port}",
        "@CACHE_DIR@": str(tmp / "cache"),
        "@LISTEN_HTTP@": f"127.0.0.1:{http_port}",
        "@LISTEN_HTTPS@": f"127.0.0.1:{https_port}",
        "@HTTPS_PORT_SUFFIX@": f":{https_port}",
        "@SERVER_NAME@": "127.0.0.1",
        "@TLS_CERT@": str(cert),
        "@TLS_KEY@": str(key),
        "@CLIENT_CA@": str(client_ca),
    }
    for k, v in values.items():
        text = text.replace(k, v)
    assert "@" not in "".join(line for line in text.splitlines() if not line.lstrip().startswith("#")), "unfilled placeholder"
    site = tmp / "site.conf"
    site.write_text(text)
    main = tmp / "nginx.conf"
    main.write_text(
        f"""user root;
worker_processes 1;
error_log {tmp / 'error.log'} warn;
pid {tmp / 'nginx.pid'};
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {tmp / 'body'};
    proxy_temp_path {tmp / 'proxy'};
    fastcgi_temp_path {tmp / 'fastcgi'};
    uwsgi_temp_path {tmp / 'uwsgi'};
    scgi_temp_path {tmp / 'scgi'};
    include {site};
}}
"""
    )
    return main


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, *, verify: object = True, timeout: float = 90) -> None:
    """Wait for ``url`` to answer 200; ``log``: the file the process writes its stderr to (a file,
    not a pipe: a pipe held open by the app's worker processes would block the read below)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2, verify=verify).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"{url} did not come up: {log.read_text(errors='replace')[-2000:]}")


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def test_nginx_two_workers_postgres_sso_and_ocsp(cli_home: CliHome, tmp_path: Path) -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet

    http_port, https_port, app_port = free_port(), free_port(), free_port()
    public = f"https://127.0.0.1:{https_port}"
    with postgres_database() as db_url, (tmp_path / "app.log").open("wb") as app_log, (tmp_path / "nginx.log").open("wb") as proxy_log:
        env = {"EAUTH_DATABASE_URL": db_url, "EAUTH_PUBLIC_URL": public}
        cli_home.env.update(env)
        cli_home.run("init")
        chain = cli_home.run("ca", "chain").stdout
        (tmp_path / "chain.pem").write_text(chain)
        blocks = ["-----BEGIN CERTIFICATE-----" + b for b in chain.split("-----BEGIN CERTIFICATE-----")[1:]]
        issuing_pem, root_pem = tmp_path / "issuing.pem", tmp_path / "root.pem"
        issuing_pem.write_text(blocks[0])
        root_pem.write_text(blocks[-1])
        # nginx's own server certificate (the province would use its web PKI certificate here)
        cert, key = tmp_path / "tls.pem", tmp_path / "tls.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )
        person = json.loads(cli_home.run("--json", "person", "add", "--name", "李四", "--id-number", (idn := unique_id_number()), "--password-stdin", input=PASSWORD + "\n").stdout)["id"]
        rp = json.loads(cli_home.run(
            "--json", "client", "add", "--name", "不动产登记", "--redirect-uri", "http://127.0.0.1:9/cb", "--first-party",
            "--grant", "authorization_code", "--grant", "refresh_token", "--scope", "openid", "--scope", "profile",
        ).stdout)
        system = json.loads(cli_home.run("--json", "client", "add", "--name", "部门系统", "--grant", "client_credentials", "--scope", "certificates:read").stdout)
        csr = tmp_path / "citizen.csr"
        csr.write_text(make_csr())
        issued = json.loads(cli_home.run("--json", "cert", "issue", "--profile", "citizen", "--csr", str(csr), "--subject-id", person).stdout)
        leaf = tmp_path / "leaf.pem"
        cli_home.run("cert", "download", issued["serial"], "--format", "pem", "--out", str(leaf))

        app = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "eauth"), "serve", "--port", str(app_port), "--workers", "2"],
            env=cli_home.env, stdout=subprocess.DEVNULL, stderr=app_log,
        )
        main = render_site(tmp_path, http_port=http_port, https_port=https_port, app_port=app_port, cert=cert, key=key, client_ca=tmp_path / "chain.pem")
        proxy = None
        trust = ssl.create_default_context(cafile=str(cert))
        try:
            wait_http(f"http://127.0.0.1:{app_port}/health", app, tmp_path / "app.log")
            proxy = subprocess.Popen([NGINX, "-c", str(main), "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=proxy_log)
            wait_http(f"{public}/health", proxy, tmp_path / "nginx.log", verify=trust)
            with httpx.Client(base_url=public, verify=trust, timeout=30) as web:
                # -- OpenID Connect through the proxy ------------------------------------------------
                meta = web.get("/.well-known/openid-configuration").json()
                assert meta["issuer"] == public and meta["token_endpoint"].startswith(public)
                keys = KeySet.import_key_set(web.get(urlsplit(meta["jwks_uri"]).path).json())
                tok = web.post(urlsplit(meta["token_endpoint"]).path, data={"grant_type": "client_credentials", "scope": "certificates:read"}, auth=(system["client_id"], system["client_secret"]))
                assert tok.status_code == 200, tok.text
                access = jwt.decode(tok.json()["access_token"], keys)
                assert access.claims["iss"] == public and access.header["typ"].lower() == "at+jwt"
                r = web.get(f"/api/v1/certificates/{issued['serial']}", headers={"Authorization": f"Bearer {tok.json()['access_token']}"})
                assert r.status_code == 200 and r.json()["serial"] == issued["serial"]

                agent = Agent(public, verify=trust)
                try:
                    verifier, challenge = pkce()
                    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
                    query = urlencode({"response_type": "code", "client_id": rp["client_id"], "redirect_uri": "http://127.0.0.1:9/cb", "scope": "openid profile",
                                       "state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"})
                    back = agent.login(agent.get(f"/oidc/authorize?{query}"), idn, PASSWORD)
                    assert back.status_code in (302, 303) and back.headers["location"].startswith("http://127.0.0.1:9/cb"), back.text[:300]
                    params = parse_qs(urlsplit(back.headers["location"]).query)
                    assert params["state"] == [state] and params["iss"] == [public]
                    tokens = web.post(urlsplit(meta["token_endpoint"]).path, data={"grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": "http://127.0.0.1:9/cb", "code_verifier": verifier},
                                      auth=(rp["client_id"], rp["client_secret"]))
                    assert tokens.status_code == 200, tokens.text
                    id_token = jwt.decode(tokens.json()["id_token"], keys)
                    assert id_token.claims["sub"] and id_token.claims["nonce"] == nonce and id_token.claims["aud"] in (rp["client_id"], [rp["client_id"]])
                    info = web.get(urlsplit(meta["userinfo_endpoint"]).path, headers={"Authorization": f"Bearer {tokens.json()['access_token']}"})
                    assert info.status_code == 200 and info.json()["sub"] == id_token.claims["sub"]
                finally:
                    agent.close()

            # -- OCSP through the proxy: openssl, good → revoked; GET answers cached by nginx --------
            def openssl_ocsp(url: str) -> str:
                done = subprocess.run(["openssl", "ocsp", "-issuer", str(issuing_pem), "-cert", str(leaf), "-url", url, "-CAfile", str(root_pem), "-no_nonce"],
                                      capture_output=True, text=True, timeout=60)
                assert "Response verify OK" in done.stderr + done.stdout, done.stderr
                return done.stdout

            assert ": good" in openssl_ocsp(f"http://127.0.0.1:{http_port}/ocsp")
            req = subprocess.run(["openssl", "ocsp", "-issuer", str(issuing_pem), "-cert", str(leaf), "-no_nonce", "-reqout", "/dev/stdout"], capture_output=True, check=True).stdout
            get_path = "/ocsp/" + base64.b64encode(req).decode().replace("/", "%2F").replace("+", "%2B").replace("=", "%3D")
            with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as plain:
                first, second = plain.get(get_path), plain.get(get_path)
                assert first.headers["content-type"] == "application/ocsp-response"
                assert second.headers.get("x-cache-status") == "HIT" and second.content == first.content
                assert plain.get("/admin", follow_redirects=False).headers["location"].startswith(public)
            cli_home.run("cert", "revoke", issued["serial"], "--reason", "keyCompromise")
            deadline = time.time() + 10
            while "revoked" not in (out := openssl_ocsp(f"http://127.0.0.1:{http_port}/ocsp")):  # POST: never cached
                assert time.time() < deadline, out
                time.sleep(0.3)
            assert "Reason: keyCompromise" in out
        finally:
            for proc in (proxy, app):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
