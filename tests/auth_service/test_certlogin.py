"""Certificate login through a real nginx (Debian nginx-light) on loopback.

nginx terminates TLS with ``ssl_verify_client optional`` (our CA chain as the client CA list; a second
server block uses ``optional_no_ca`` so the app's own checks meet a foreign certificate) and passes the
client certificate to the app in the RFC 9440 ``Client-Cert`` header. nginx connects to the app from
127.0.0.2 (``proxy_bind``), the only address in ``EAUTH_TRUSTED_PROXIES`` of this platform, so a
``Client-Cert`` header sent to the app directly from 127.0.0.1 is refused. The client certificate is
issued by our CA (citizen profile); revoking it makes the next certificate login fail.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.audit import search
from core.security import Actor
from tests.auth_service import rp
from tests.auth_service.agent import Agent
from tests.auth_service.conftest import new_citizen
from tests.conftest import free_port, platform

pytestmark = pytest.mark.slow

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PROXY_ADDRESS = "127.0.0.2"


def _write_key(key, path: Path) -> None:  # type: ignore[no-untyped-def]
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)


def _self_signed(path: Path, key_path: Path, *, cn: str, ip: str | None = None, client: bool = False) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
    )
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    if client:
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)


@dataclass
class Front:
    rt: object
    url: str  # nginx, ssl_verify_client optional (our CA)
    url_no_ca: str  # nginx, ssl_verify_client optional_no_ca
    app_url: str  # the app itself, bypassing nginx
    server_ca: Path
    tmp: Path

    def tls(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.server_ca))
        if cert is not None:
            ctx.load_cert_chain(str(cert), str(key))
        return ctx


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  ssl_certificate {tmp}/server.pem; ssl_certificate_key {tmp}/server.key;
  ssl_protocols TLSv1.2 TLSv1.3;
  {servers}
}}
"""

SERVER = """
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_verify_client {mode};
    {ca}
    ssl_verify_depth 3;
    location / {{
      proxy_pass http://127.0.0.1:{app_port};
      proxy_bind {proxy};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      # RFC 9440 §2: the proxy replaces whatever Client-Cert the client sent. nginx has no native
      # :base64(DER): form; the URL-escaped PEM is accepted by the app from trusted proxies only.
      proxy_set_header Client-Cert $ssl_client_escaped_cert;
    }}
  }}
"""


@contextlib.contextmanager
def _uvicorn(app: object, port: int) -> Iterator[None]:
    import uvicorn

    # proxy_headers off, as `eauth serve` runs it: the app alone decides whom to believe.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on", proxy_headers=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "app did not start"
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def _nginx(tmp: Path, servers: str) -> Iterator[None]:
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, servers=servers))
    check = subprocess.run([NGINX, "-t", "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "nginx-error.log")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_port(port: int) -> None:
    deadline = time.time() + 15
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def front(backend, token_pool, tmp_path_factory) -> Iterator[Front]:  # type: ignore[no-untyped-def]
    from ca import service as ca_service
    from eauth.app import create_app

    with socket.socket() as probe:
        try:
            probe.bind((PROXY_ADDRESS, 0))
        except OSError:
            pytest.fail(f"{PROXY_ADDRESS} is not usable on this machine (Linux routes all of 127/8 to lo)")
    tmp = tmp_path_factory.mktemp("nginx")
    port, port_no_ca, app_port = free_port(), free_port(), free_port()
    public = f"https://127.0.0.1:{port}"
    with platform(backend, tmp_path_factory.mktemp("certhome"), token_pool, recycle=True, public_url=public, trusted_proxies=[f"{PROXY_ADDRESS}/32"]) as rt:
        _self_signed(tmp / "server.pem", tmp / "server.key", cn="127.0.0.1", ip="127.0.0.1")
        with rt.db.read() as db:
            chain = ca_service.ca_chain(rt, db)
        (tmp / "client-ca.pem").write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
        servers = SERVER.format(port=port, mode="optional", ca=f"ssl_client_certificate {tmp}/client-ca.pem;", app_port=app_port, proxy=PROXY_ADDRESS)
        servers += SERVER.format(port=port_no_ca, mode="optional_no_ca", ca="", app_port=app_port, proxy=PROXY_ADDRESS)
        with _uvicorn(create_app(rt), app_port), _nginx(tmp, servers):
            _wait_port(port)
            _wait_port(port_no_ca)
            yield Front(rt, public, f"https://127.0.0.1:{port_no_ca}", f"http://127.0.0.1:{app_port}", tmp / "server.pem", tmp)


@dataclass
class Holder:
    citizen: object
    serial: str
    cert: Path
    key: Path


def _issue(front: Front, name: str) -> Holder:
    from ca import service as ca_service

    rt = front.rt
    citizen = new_citizen(rt, name=name)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")])).sign(key, hashes.SHA256())
    with rt.db.transaction() as db:
        issued = ca_service.issue_certificate(rt, db, Actor.cli(), profile="citizen", csr=csr.public_bytes(serialization.Encoding.PEM), subject_id=citizen.id)
    cert_path, key_path = front.tmp / f"{issued.serial}.pem", front.tmp / f"{issued.serial}.key"
    cert_path.write_text(issued.pem)
    _write_key(key, key_path)
    return Holder(citizen, issued.serial, cert_path, key_path)


def _client(front: Front):  # type: ignore[no-untyped-def]
    from auth_service import service

    with front.rt.db.transaction() as db:
        return service.register_client(
            front.rt, db, Actor.cli(), name="社保局", redirect_uris=["http://127.0.0.1:9/cb"], scopes=["openid", "profile"], first_party=True
        )


def _cert_login(front: Front, base: str, tls: ssl.SSLContext, client, secret):  # type: ignore[no-untyped-def]
    meta = httpx.get(front.url + "/.well-known/openid-configuration", verify=front.tls()).json()
    meta = {k: (v.replace(front.url, base) if isinstance(v, str) else v) for k, v in meta.items()}
    meta["issuer"] = front.url
    sess = rp.session(meta, client.client_id, secret)
    url, _state, nonce, verifier = rp.authorization_url(meta, sess)
    agent = Agent(base, verify=tls)
    page = agent.follow(agent.get(url))
    assert "/sso/login?ia=" in str(page.request.url)
    return agent, sess, meta, nonce, verifier, agent.submit("/sso/login/cert", response=page)


def test_certificate_login_through_nginx(front) -> None:  # type: ignore[no-untyped-def]
    holder = _issue(front, "证书持有人")
    client, secret = _client(front)
    agent, sess, meta, nonce, verifier, done = _cert_login(front, front.url, front.tls(holder.cert, holder.key), client, secret)
    assert done.status_code == 303 and done.headers["location"].startswith("http://127.0.0.1:9/cb?code="), done.text[:800]
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=done.headers["location"], code_verifier=verifier, verify=str(front.server_ca))
    jwks_meta = dict(meta, jwks_uri=front.url + "/oidc/jwks")
    import requests

    keys = requests.get(jwks_meta["jwks_uri"], verify=str(front.server_ca), timeout=10).json()
    from joserfc import jwt
    from joserfc.jwk import KeySet

    claims = jwt.decode(token["id_token"], KeySet.import_key_set(keys), algorithms=["RS256"]).claims
    assert claims["sub"] == holder.citizen.id and claims["acr"] == "2" and claims["amr"] == ["swk"] and claims["nonce"] == nonce
    # cookies over https are Secure
    set_cookie = done.headers.get_list("set-cookie")
    assert any(c.startswith("eauth_sid=") and "Secure" in c and "HttpOnly" in c for c in set_cookie), set_cookie
    with front.rt.db.read() as db:
        ok = search(db, action="sso.login.success", target=f"person:{holder.citizen.id}")
    assert ok and ok[0].details["amr"] == ["swk"]
    agent.close()


def test_no_certificate_and_injected_header(front) -> None:  # type: ignore[no-untyped-def]
    holder = _issue(front, "无证书")
    client, secret = _client(front)
    forged = quote(holder.cert.read_text(), safe="")
    # no client certificate at all
    agent, *_rest, done = _cert_login(front, front.url, front.tls(), client, secret)
    assert done.status_code == 401 and "no certificate was presented" in done.text
    # a Client-Cert header the client sends through nginx is replaced (here: dropped) by nginx
    form = agent.form("/sso/login/cert", done)
    r = agent.http.post("/sso/login/cert", data=form.fields, headers={"Client-Cert": forged})
    assert r.status_code == 401 and "no certificate was presented" in r.text
    # the same header sent to the app directly (peer 127.0.0.1, not a trusted proxy) is refused,
    # even with this browser's valid cookies and form
    cookies = "; ".join(f"{c.name}={c.value}" for c in agent.http.cookies.jar)
    r = httpx.post(front.app_url + "/sso/login/cert", data=form.fields, headers={"Client-Cert": forged, "Cookie": cookies})
    assert r.status_code == 401 and "untrusted address" in r.text
    with front.rt.db.read() as db:
        failures = search(db, action="sso.login.failure", target="certificate")
    assert {e.details["reason"] for e in failures} >= {"no certificate was presented", "certificate header from an untrusted address"}
    agent.close()


def test_revoked_certificate_refused(front) -> None:  # type: ignore[no-untyped-def]
    from ca import revocation

    holder = _issue(front, "已吊销")
    client, secret = _client(front)
    *_rest, done = _cert_login(front, front.url, front.tls(holder.cert, holder.key), client, secret)
    assert done.status_code == 303
    with front.rt.db.transaction() as db:
        revocation.revoke(front.rt, db, Actor.cli(), serial=holder.serial, reason="keyCompromise")
    # nginx (no CRL configured) still lets the TLS handshake through; the app checks the status
    *_rest, done = _cert_login(front, front.url, front.tls(holder.cert, holder.key), client, secret)
    assert done.status_code == 401 and "certificate is revoked" in done.text


def test_on_hold_certificate_refused_then_resumed(front) -> None:  # type: ignore[no-untyped-def]
    from ca import revocation

    holder = _issue(front, "暂停")
    client, secret = _client(front)
    with front.rt.db.transaction() as db:
        revocation.suspend(front.rt, db, Actor.cli(), serial=holder.serial)
    *_rest, done = _cert_login(front, front.url, front.tls(holder.cert, holder.key), client, secret)
    assert done.status_code == 401 and "certificate is on_hold" in done.text
    with front.rt.db.transaction() as db:
        revocation.resume(front.rt, db, Actor.cli(), serial=holder.serial)
    *_rest, done = _cert_login(front, front.url, front.tls(holder.cert, holder.key), client, secret)
    assert done.status_code == 303


def test_foreign_certificate(front) -> None:  # type: ignore[no-untyped-def]
    client, secret = _client(front)
    cert, key = front.tmp / "foreign.pem", front.tmp / "foreign.key"
    _self_signed(cert, key, cn="110101199001011234", client=True)
    # ssl_verify_client optional: nginx itself refuses a certificate outside our CA (400)
    with pytest.raises(AssertionError):
        _cert_login(front, front.url, front.tls(cert, key), client, secret)
    r = httpx.get(front.url + "/sso/account", verify=front.tls(cert, key))
    assert r.status_code == 400 and "SSL certificate error" in r.text
    # optional_no_ca: it reaches the app, whose own chain check refuses it
    *_rest, done = _cert_login(front, front.url_no_ca, front.tls(cert, key), client, secret)
    assert done.status_code == 401 and "not issued by this platform" in done.text


def test_certificate_as_second_step_for_acr2(front) -> None:  # type: ignore[no-untyped-def]
    """An RP asks for acr 2: password first, then the certificate as the second step (amr pwd+swk+mfa).
    A certificate of another person is refused at that step."""
    holder = _issue(front, "双因素")
    stranger = _issue(front, "他人")
    client, secret = _client(front)
    meta = httpx.get(front.url + "/.well-known/openid-configuration", verify=front.tls()).json()
    sess = rp.session(meta, client.client_id, secret)
    for cert_of, expect in ((stranger, 401), (holder, 303)):
        url, _state, nonce, verifier = rp.authorization_url(meta, sess, acr_values="2")
        agent = Agent(front.url, verify=front.tls(cert_of.cert, cert_of.key))
        page = agent.login(agent.get(url), holder.citizen.id_number, holder.citizen.password)
        assert "/sso/login/otp" in str(page.request.url), page.text[:300]
        done = agent.submit("/sso/login/cert", response=page)
        assert done.status_code == expect, done.text[:500]
        if expect == 401:
            assert "certificate of another person" in done.text
        agent.close()
    token = sess.fetch_token(meta["token_endpoint"], authorization_response=done.headers["location"], code_verifier=verifier, verify=str(front.server_ca))
    import requests
    from joserfc import jwt
    from joserfc.jwk import KeySet

    keys = KeySet.import_key_set(requests.get(front.url + "/oidc/jwks", verify=str(front.server_ca), timeout=10).json())
    claims = jwt.decode(token["id_token"], keys, algorithms=["RS256"]).claims
    assert claims["sub"] == holder.citizen.id and claims["acr"] == "2" and set(claims["amr"]) == {"pwd", "swk", "mfa"} and claims["nonce"] == nonce
