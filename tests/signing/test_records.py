"""Sealed data records: JWS (JAdES) and CMS (CAdES) — sealing, verification, tampering, and
independent checks (``openssl cms -verify``; the JWS checked with joserfc against the x5c key)."""

from __future__ import annotations

import base64
import json

import pytest

from core.errors import Problem
from core.security import Actor
from signing import service
from signing.records import b64u, b64u_decode, canonical_json
from tests.signing.conftest import openssl

RECORD = {"licence_no": "JY14601000000042", "holder": "海口市示范科技有限公司", "scope": ["食品销售"], "valid_until": "2031-12-31"}


def _seal(rt, seal_id: str, records: list, **kw):  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        return service.seal_records(rt, db, Actor.cli(), seal_id=seal_id, records_=records, **kw)


def test_jws_b_b_compact_verifies_with_an_independent_jose_library(rt, seal) -> None:  # type: ignore[no-untyped-def]
    from cryptography import x509
    from joserfc import jws
    from joserfc.jwk import ECKey
    from joserfc.jws import JWSRegistry
    from joserfc.registry import HeaderParameter

    (sealed,) = _seal(rt, seal.id, [RECORD])
    header = json.loads(b64u_decode(sealed.signature.split(".")[0]))
    assert header["alg"] == "ES256" and header["crit"] == ["sigT"] and len(header["x5c"]) == 2
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    key = ECKey.import_key(leaf.public_key())
    # JAdES headers carry the x5c chain (larger than joserfc's 512-byte default) and the critical sigT
    registry = JWSRegistry(header_registry={"sigT": HeaderParameter("JAdES claimed signing time", "str")}, algorithms=["ES256"])
    registry.max_header_length = 16 * 1024
    obj = jws.deserialize_compact(sealed.signature, key, registry=registry)
    assert json.loads(obj.payload) == RECORD
    report = service.verify_document(rt, sealed.signature.encode())
    assert report.indication.value == "TOTAL-PASSED" and report.signatures[0].level == "B-B"
    assert report.signatures[0].signing_time_source == "claimed" and report.signatures[0].signer.seal_id == seal.id


def test_jws_b_t_detached_payload(rt, seal) -> None:  # type: ignore[no-untyped-def]
    (sealed,) = _seal(rt, seal.id, [RECORD], level="B-T", detached=True)
    obj = json.loads(sealed.signature)
    assert "payload" not in obj and obj["header"]["etsiU"][0]["sigTst"]["tstTokens"][0]["val"]
    with pytest.raises(Problem) as caught:
        service.verify_document(rt, sealed.signature.encode())
    assert caught.value.code == "verify.jws_payload_missing"
    report = service.verify_document(rt, sealed.signature.encode(), detached=canonical_json(RECORD))
    assert report.indication.value == "TOTAL-PASSED" and report.signatures[0].level == "B-T"
    assert report.signatures[0].signing_time_source == "timestamp" and report.signatures[0].timestamps[0].trusted
    other = service.verify_document(rt, sealed.signature.encode(), detached=canonical_json(RECORD | {"valid_until": "2099-12-31"}))
    assert other.indication.value == "TOTAL-FAILED" and other.sub_indication.value == "SIG_CRYPTO_FAILURE"


def test_tampered_jws_payload_fails(rt, seal) -> None:  # type: ignore[no-untyped-def]
    (sealed,) = _seal(rt, seal.id, [RECORD])
    protected, _payload, signature = sealed.signature.split(".")
    forged = f"{protected}.{b64u(canonical_json(RECORD | {'holder': '冒名公司'}))}.{signature}"
    report = service.verify_document(rt, forged.encode())
    assert report.indication.value == "TOTAL-FAILED" and report.colour == "red"
    # a signature from another key under the same header: still the x5c key that must verify
    flipped = bytearray(b64u_decode(signature))
    flipped[5] ^= 1
    report = service.verify_document(rt, f"{protected}.{_payload}.{b64u(bytes(flipped))}".encode())
    assert report.indication.value == "TOTAL-FAILED"
    # a tampered timestamp token in a B-T JWS: the timestamp is not valid → not TOTAL-PASSED
    (stamped,) = _seal(rt, seal.id, [RECORD], level="B-T")
    obj = json.loads(stamped.signature)
    token = bytearray(base64.b64decode(obj["header"]["etsiU"][0]["sigTst"]["tstTokens"][0]["val"]))
    token[-10] ^= 1
    obj["header"]["etsiU"][0]["sigTst"]["tstTokens"][0]["val"] = base64.b64encode(bytes(token)).decode()
    report = service.verify_document(rt, json.dumps(obj).encode())
    assert report.indication.value != "TOTAL-PASSED" and report.signatures[0].signing_time_source == "claimed"


@pytest.mark.parametrize("alg", ["none", "None", "HS256"])
def test_unsigned_or_unsupported_alg_is_a_4xx_problem(rt, seal, alg) -> None:  # type: ignore[no-untyped-def]
    (sealed,) = _seal(rt, seal.id, [RECORD])
    header = json.loads(b64u_decode(sealed.signature.split(".")[0])) | {"alg": alg}
    token = f"{b64u(json.dumps(header).encode())}.{sealed.signature.split('.')[1]}."
    with pytest.raises(Problem) as caught:
        service.verify_document(rt, token.encode())
    assert caught.value.status == 400
    assert caught.value.code == ("verify.jws_bad_alg" if alg == "HS256" else "verify.jws_unsigned")


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"eyJ.not base64.x", "verify.jws_malformed"), (b'{"protected": 1, "signature": "x"}', "verify.jws_malformed"), (b"eyJhbGciOiJFUzI1NiJ9.e30.AAAA", "verify.jws_no_certificate")],
)
def test_malformed_jws(rt, body, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as caught:
        service.verify_document(rt, body)
    assert caught.value.code == code and caught.value.status == 400


def test_cms_detached_b_b_openssl_and_wrong_digest(rt, seal, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (sealed,) = _seal(rt, seal.id, [RECORD], format="cms")
    der = base64.b64decode(sealed.signature)
    (tmp_path / "r.p7s").write_bytes(der)
    (tmp_path / "r.json").write_bytes(canonical_json(RECORD))
    ok = openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "r.p7s"), "-content", str(tmp_path / "r.json"), "-CAfile", str(pki / "root.pem"), "-purpose", "any", "-out", "/dev/null")
    assert ok.returncode == 0, ok.stderr
    shown = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", str(tmp_path / "r.p7s")).stdout.decode()
    assert "id-smime-aa-signingCertificateV2" in shown and "messageDigest" in shown  # CAdES-B-B attributes
    report = service.verify_document(rt, der, detached=canonical_json(RECORD))
    assert report.indication.value == "TOTAL-PASSED" and report.signatures[0].format == "CAdES" and report.signatures[0].level == "B-B"
    wrong = service.verify_document(rt, der, detached=canonical_json(RECORD | {"holder": "冒名公司"}))
    assert wrong.indication.value == "TOTAL-FAILED" and wrong.sub_indication.value == "HASH_FAILURE"
    pem = b"-----BEGIN PKCS7-----\n" + base64.encodebytes(der) + b"-----END PKCS7-----\n"
    assert service.verify_document(rt, pem, detached=canonical_json(RECORD)).indication.value == "TOTAL-PASSED"


@pytest.mark.parametrize("body", [b"\x30\x03\x02\x01\x01", b"\x30\x82\x10\x00abc", b"-----BEGIN PKCS7-----\n!!!\n-----END PKCS7-----\n"])
def test_malformed_cms_is_a_4xx_problem(rt, body) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as caught:
        service.verify_document(rt, body, detached=b"x")
    assert caught.value.code == "verify.cms_malformed" and caught.value.status == 400


def test_record_batch_is_one_transaction_and_one_audit_entry(rt, seal) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from core.audit import AuditEntry

    with rt.db.read() as db:
        before = db.execute(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "signing.seal.jws")).scalar_one()
    sealed = _seal(rt, seal.id, [{"n": i} for i in range(200)])
    assert len({s.document_id for s in sealed}) == 200
    with rt.db.read() as db:
        after = db.execute(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "signing.seal.jws")).scalar_one()
    assert after == before + 1
    with pytest.raises(Problem) as caught:
        _seal(rt, seal.id, [{"big": "x" * (1024 * 1024 + 1)}])
    assert caught.value.code == "signing.record_too_large"


@pytest.mark.parametrize("detached", [False, True])
def test_a_batch_of_records_each_verifies_and_is_registered_under_its_own_digest(rt, seal, detached: bool) -> None:  # type: ignore[no-untyped-def]
    """A batch signs its digests in one token borrow and hashes the shared header once: every record
    still gets its own signature, a unique id and the register digest of exactly its JWS text."""
    import hashlib

    batch = [RECORD | {"licence_no": f"JY146010000{i:05d}"} for i in range(40)]
    sealed = _seal(rt, seal.id, batch, detached=detached)
    assert len({s.document_id for s in sealed}) == len(batch) and all(len(s.document_id) == 16 for s in sealed)
    assert len({s.signature.split(".")[2] for s in sealed}) == len(batch)
    for record, item in zip(batch, sealed, strict=True):
        assert item.sha256 == hashlib.sha256(item.signature.encode()).hexdigest()
        assert (item.signature.split(".")[1] == "") is detached
    for i in (0, 17, 39):
        report = service.verify_document(rt, sealed[i].signature.encode(), detached=canonical_json(batch[i]) if detached else None)
        assert report.indication.value == "TOTAL-PASSED" and report.document.registered_id == sealed[i].document_id
    swapped = service.verify_document(rt, sealed[0].signature.encode(), detached=canonical_json(batch[1])) if detached else None
    assert swapped is None or swapped.indication.value == "TOTAL-FAILED"


def test_the_seal_certificate_names_the_department_by_name_and_uscc(rt, seal, department) -> None:  # type: ignore[no-untyped-def]
    """The seal profile's DN: organisation name + organizationIdentifier ``NTRCN-<USCC>`` (ETSI EN
    319 412-1 §5.1.4) from the identity registry, no internal id; the report shows the bare USCC."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(seal.cert_der)
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == department.name
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == f"NTRCN-{department.uscc}"
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER) == [] and department.id not in cert.subject.rfc4514_string()
    (sealed,) = _seal(rt, seal.id, [RECORD])
    signer = service.verify_document(rt, sealed.signature.encode()).signatures[0].signer
    assert signer.uscc == department.uscc and signer.organisation == department.name and signer.seal_id == seal.id
