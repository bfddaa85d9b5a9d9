"""RFC 3161 timestamp authority over real HTTP, checked by ``openssl ts``."""

from __future__ import annotations

import hashlib
import os

import httpx
from asn1crypto import tsp

from signing.rfc3161 import Failure, build_query, status_of
from tests.signing.conftest import openssl

QUERY = {"Content-Type": "application/timestamp-query"}


def test_openssl_query_is_granted_and_verified_by_openssl(rt, http: httpx.Client, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data.txt"
    data.write_bytes("电子营业执照 ".encode() * 50)
    query = tmp_path / "q.tsq"
    made = openssl("ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query))
    assert made.returncode == 0, made.stderr
    r = http.post("/tsa", content=query.read_bytes(), headers=QUERY)
    assert r.status_code == 200 and r.headers["content-type"] == "application/timestamp-reply"
    reply = tmp_path / "r.tsr"
    reply.write_bytes(r.content)
    ok = openssl("ts", "-verify", "-in", str(reply), "-queryfile", str(query), "-CAfile", str(pki / "root.pem"), "-untrusted", str(pki / "issuing.pem"))
    assert ok.returncode == 0 and b"Verification: OK" in ok.stdout, ok.stdout + ok.stderr
    ok = openssl("ts", "-verify", "-in", str(reply), "-data", str(data), "-CAfile", str(pki / "root.pem"), "-untrusted", str(pki / "issuing.pem"))
    assert ok.returncode == 0, ok.stderr
    # the same reply does not verify other data
    other = tmp_path / "other.txt"
    other.write_bytes(b"something else")
    bad = openssl("ts", "-verify", "-in", str(reply), "-data", str(other), "-CAfile", str(pki / "root.pem"), "-untrusted", str(pki / "issuing.pem"))
    assert bad.returncode != 0
    text = openssl("ts", "-reply", "-in", str(reply), "-text").stdout.decode()
    assert "Status: Granted." in text and f"Policy OID: {rt.settings.tsa_policy_oid}" in text, text
    assert "Accuracy: 0x01 seconds" in text and "Nonce: unspecified" not in text and "TSA: DirName:" in text, text


def test_nonce_is_echoed_and_serials_increase(http: httpx.Client) -> None:
    serials = []
    for _ in range(5):
        nonce = int.from_bytes(os.urandom(8), "big")
        r = http.post("/tsa", content=build_query(hashlib.sha256(os.urandom(16)).digest(), nonce=nonce), headers=QUERY)
        assert status_of(r.content) == ("granted", [])
        tst = tsp.TimeStampResp.load(r.content)["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
        assert tst["nonce"].native == nonce
        serials.append(tst["serial_number"].native)
    assert serials == sorted(serials) and len(set(serials)) == 5


def test_cert_req_false_omits_certificates(http: httpx.Client) -> None:
    r = http.post("/tsa", content=build_query(hashlib.sha256(b"x").digest(), cert_req=False), headers=QUERY)
    signed = tsp.TimeStampResp.load(r.content)["time_stamp_token"]["content"]
    assert not signed["certificates"]
    r = http.post("/tsa", content=build_query(hashlib.sha256(b"x").digest(), cert_req=True), headers=QUERY)
    signed = tsp.TimeStampResp.load(r.content)["time_stamp_token"]["content"]
    assert len(signed["certificates"]) >= 1


def test_sha1_imprint_is_rejected_with_bad_alg(http: httpx.Client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    query = tmp_path / "q.tsq"
    (tmp_path / "d").write_bytes(b"data")
    assert openssl("ts", "-query", "-data", str(tmp_path / "d"), "-sha1", "-out", str(query)).returncode == 0
    r = http.post("/tsa", content=query.read_bytes(), headers=QUERY)
    assert r.status_code == 200 and r.headers["content-type"] == "application/timestamp-reply"
    assert status_of(r.content) == ("rejection", [Failure.BAD_ALG])
    (tmp_path / "r.tsr").write_bytes(r.content)
    shown = openssl("ts", "-reply", "-in", str(tmp_path / "r.tsr"), "-text").stdout.decode()
    assert "Status: Rejected." in shown and "unrecognized or unsupported algorithm" in shown


def test_unknown_hash_oid_is_bad_alg(http: httpx.Client) -> None:
    from signing import der

    imprint = der.seq(der.seq(der.oid("1.2.3.4.5")), der.octet_string(bytes(32)))
    r = http.post("/tsa", content=der.seq(der.integer(1), imprint), headers=QUERY)
    assert status_of(r.content) == ("rejection", [Failure.BAD_ALG])


def test_unaccepted_policy(http: httpx.Client) -> None:
    r = http.post("/tsa", content=build_query(hashlib.sha256(b"x").digest(), policy="1.2.3.4"), headers=QUERY)
    assert status_of(r.content) == ("rejection", [Failure.UNACCEPTED_POLICY])


def test_garbage_and_empty_and_oversized_queries_are_rejections_not_errors(http: httpx.Client) -> None:
    for body in (b"garbage", b"", b"\x30\x82\xff\xff" + bytes(20), os.urandom(20000)):
        r = http.post("/tsa", content=body, headers=QUERY)
        assert r.status_code == 200, r.text
        status, bits = status_of(r.content)
        assert status == "rejection" and bits and bits[0] in (Failure.BAD_REQUEST, Failure.BAD_DATA_FORMAT)
    # wrong digest length for the named algorithm
    from signing import der

    imprint = der.seq(der.seq(der.oid("2.16.840.1.101.3.4.2.1")), der.octet_string(bytes(20)))
    r = http.post("/tsa", content=der.seq(der.integer(1), imprint), headers=QUERY)
    assert status_of(r.content)[0] == "rejection"
    # version 2 is a bad request
    imprint = der.seq(der.seq(der.oid("2.16.840.1.101.3.4.2.1")), der.octet_string(bytes(32)))
    r = http.post("/tsa", content=der.seq(der.integer(2), imprint), headers=QUERY)
    assert status_of(r.content) == ("rejection", [Failure.BAD_REQUEST])


def test_wrong_content_type_is_a_415_problem(http: httpx.Client) -> None:
    r = http.post("/tsa", content=build_query(hashlib.sha256(b"x").digest()), headers={"Content-Type": "application/json"})
    assert r.status_code == 415 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "tsa.bad_content_type"
    assert http.get("/tsa").status_code == 405


def test_tsa_is_rate_limited_per_address(rt, http: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    from core.ratelimit import limiter, reset
    from signing.web import TSA_PER_IP

    lim = limiter(rt)
    saved = lim.overrides.get(TSA_PER_IP.area, "absent")
    lim.overrides[TSA_PER_IP.area] = (3, 60)  # the EAUTH_RATE_LIMITS override, applied in place
    reset(rt, TSA_PER_IP, "127.0.0.1")  # earlier tests of this module already counted
    try:
        query = build_query(hashlib.sha256(b"x").digest())
        statuses = [http.post("/tsa", content=query, headers=QUERY).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        r = http.post("/tsa", content=query, headers=QUERY)
        assert r.headers["content-type"] == "application/problem+json" and r.json()["code"] == "rate_limited.tsa" and int(r.headers["retry-after"]) >= 1
    finally:
        if saved == "absent":
            lim.overrides.pop(TSA_PER_IP.area, None)
        else:
            lim.overrides[TSA_PER_IP.area] = saved  # type: ignore[assignment]
        reset(rt, TSA_PER_IP, "127.0.0.1")


def test_a_batch_of_queries_answers_each_like_one_query(rt, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``respond_many`` (the /tsa thread's batches, signatures in one token borrow): every reply is
    the one ``respond`` would give — rejections alike, each granted token verified by openssl
    against its own query, unique increasing serials, DER-ordered signed attributes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from signing import service

    authority = service.tsa_authority(rt)
    tsa_pem = tmp_path / "tsa.pem"  # for the tokens asked without certReq
    tsa_pem.write_bytes(x509.load_der_x509_certificate(authority.cert_der).public_bytes(serialization.Encoding.PEM) + (pki / "issuing.pem").read_bytes())
    datas = [os.urandom(32) for _ in range(6)]
    queries = [build_query(hashlib.sha256(d).digest(), nonce=i + 1, cert_req=i % 2 == 0) for i, d in enumerate(datas)]
    bad = [b"", b"\x30\x03\x02\x01\x02", build_query(hashlib.sha256(b"x").digest(), policy="1.2.3.4")]
    mixed = [queries[0], bad[0], queries[1], queries[2], bad[1], queries[3], bad[2], queries[4], queries[5]]
    replies = authority.respond_many(mixed)
    assert len(replies) == len(mixed)
    for query, reply in zip(mixed, replies, strict=True):
        if query in bad:
            assert reply == authority.respond(query) and status_of(reply)[0] == "rejection"
    granted = [r for q, r in zip(mixed, replies, strict=True) if q not in bad]
    serials = []
    for i, (data, query, reply) in enumerate(zip(datas, queries, granted, strict=True)):
        assert status_of(reply) == ("granted", [])
        signed = tsp.TimeStampResp.load(reply)["time_stamp_token"]["content"]
        tst = signed["encap_content_info"]["content"].parsed
        assert tst["nonce"].native == i + 1 and bool(signed["certificates"]) is (i % 2 == 0)
        serials.append(tst["serial_number"].native)
        attrs = signed["signer_infos"][0]["signed_attrs"]
        encoded = [a.dump() for a in attrs]
        assert encoded == sorted(encoded) and {a["type"].native for a in attrs} == {"content_type", "signing_time", "message_digest", "signing_certificate_v2"}
        (tmp_path / "q.tsq").write_bytes(query)
        (tmp_path / "r.tsr").write_bytes(reply)
        (tmp_path / "d.bin").write_bytes(data)
        ok = openssl("ts", "-verify", "-in", str(tmp_path / "r.tsr"), "-queryfile", str(tmp_path / "q.tsq"), "-CAfile", str(pki / "root.pem"), "-untrusted", str(pki / "issuing.pem") if i % 2 == 0 else str(tsa_pem))
        assert ok.returncode == 0 and b"Verification: OK" in ok.stdout, ok.stdout + ok.stderr
    assert serials == sorted(serials) and len(set(serials)) == len(serials)


def test_timestamp_queue_answers_each_waiter_survives_failures_and_idles_out() -> None:
    """The /tsa thread: each waiting request gets the reply to its own query, however the queries
    were batched; a failure reaches every request of its batch and the thread goes on; an idle
    thread ends and the next query starts another."""
    import asyncio

    from core.errors import Kind, Problem
    from signing.web import TimestampQueue

    batches: list[int] = []

    def respond(queries: list[bytes]) -> list[bytes]:
        batches.append(len(queries))
        if b"fail" in queries:
            raise Problem(Kind.UNAVAILABLE, "tsa.not_initialised", "no unit")
        return [b"reply:" + q for q in queries]

    queue = TimestampQueue(respond)
    queue.IDLE_SECONDS = 0.2  # type: ignore[misc]

    async def run(queries: list[bytes]) -> list[object]:
        return await asyncio.gather(*(queue.submit(q) for q in queries), return_exceptions=True)

    queries = [f"q{i}".encode() for i in range(50)]
    assert asyncio.run(run(queries)) == [b"reply:" + q for q in queries]
    assert sum(batches) == 50
    outcome = asyncio.run(run([b"a", b"fail", b"b"]))
    assert all(isinstance(o, Problem) for o in outcome) or (outcome[0] == b"reply:a" and isinstance(outcome[1], Problem))
    assert asyncio.run(run([b"after"])) == [b"reply:after"]
    worker = queue._thread
    assert worker is not None and worker.is_alive()
    worker.join(timeout=5)  # idle for IDLE_SECONDS: it ends by itself
    assert not worker.is_alive() and queue._thread is None
    assert asyncio.run(run([b"again"])) == [b"reply:again"]
    assert queue._thread is not None and queue._thread is not worker and queue._thread.name == "eauth-tsa"
