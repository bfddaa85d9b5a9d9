"""``eauth serve``'s listening socket (``eauth.http_protocol.tune_listener``): TCP_DEFER_ACCEPT.

A real listening socket on loopback, tuned as ``eauth serve`` tunes its own: a client that connects
and sends nothing is not handed to the server (``accept`` finds nothing), one that sends its request
is handed over at once with the request already readable; and ``eauth serve`` itself still answers
(the platform's /health over a real connection, through ``run_server``).
"""

from __future__ import annotations

import select
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from eauth.http_protocol import HEADER_TIMEOUT, tune_listener
from tests.conftest import ROOT, CliHome, free_port

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_DEFER_ACCEPT"), reason="TCP_DEFER_ACCEPT is Linux's")


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    tune_listener(sock)
    sock.listen(16)
    return sock


_TCP_STATES = {"01": "ESTABLISHED", "03": "SYN_RECV", "0A": "LISTEN"}


def _tcp_states(local_port: int, remote_port: int) -> list[str]:
    """States of the IPv4 sockets 127.0.0.1:local_port ↔ 127.0.0.1:remote_port, from /proc/net/tcp
    (the kernel lists half-open connections there too; no iproute2 needed)."""
    want = (f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}")
    states = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == want:
            states.append(_TCP_STATES.get(fields[3], fields[3]))
    return states


def _acceptable(sock: socket.socket, wait: float) -> bool:
    return bool(select.select([sock], [], [], wait)[0])


def test_option_set_with_the_header_deadline() -> None:
    with _listener() as sock:
        # the kernel rounds the period to whole SYN-ACK retransmissions: at least what was asked
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) >= int(HEADER_TIMEOUT)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        tune_listener(unix)  # not a TCP socket: left alone, no error


def test_silent_connection_waits_and_a_request_is_accepted_at_once() -> None:
    with _listener() as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # connected, sends nothing
            assert not _acceptable(server, 0.5)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as talker:
                talker.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                started = time.monotonic()
                assert _acceptable(server, 5)
                conn, _ = server.accept()
                with conn:
                    assert time.monotonic() - started < 1
                    conn.setblocking(False)
                    assert conn.recv(100).startswith(b"GET /health ")  # already there: no second wait


@pytest.mark.slow
def test_eauth_serve_answers_on_its_tuned_socket(cli_home: CliHome, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli_home.run("init")
    port = free_port()
    env = {**cli_home.env, "EAUTH_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "eauth"), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.time() < deadline, (tmp_path / "serve.log").read_text(errors="replace")[-2000:]
                time.sleep(0.3)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert "server" not in r.headers  # no "server: uvicorn" banner
        # The socket eauth serve listens on is the tuned one: a client that connects and stays
        # silent is connected on its side, while the server's kernel still holds it half-open
        # (SYN-RECV) instead of queueing it for a worker.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as silent:
            local = silent.getsockname()[1]
            time.sleep(0.2)
            server_side = _tcp_states(port, local)
            assert server_side == ["SYN_RECV"], server_side
            # and a request on another connection is answered meanwhile
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
