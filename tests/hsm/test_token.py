"""The HSM layer against a real SoftHSM2 token through PKCS#11."""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.x509.oid import NameOID

from hsm.errors import HsmError, HsmErrorKind
from hsm.jws import sign_jws
from hsm.keys import KeySpec
from hsm.token import Token, TokenConfig
from tests.conftest import SO_PIN, TOKEN_PIN


@pytest.fixture(scope="module")
def token(token_pool):  # type: ignore[no-untyped-def]
    t = Token(TokenConfig(token_pool.module, token_pool.take(), TOKEN_PIN, pool_size=4))
    yield t
    t.close()


@pytest.mark.parametrize("spec", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "aes-256"])
def test_generated_keys_are_sensitive_and_never_extractable(token: Token, spec: str) -> None:
    label = f"test/{spec}"
    token.generate(KeySpec.parse(spec), label)
    attrs = token.attributes(label)
    assert attrs == {"sensitive": True, "extractable": False, "always_sensitive": True, "never_extractable": True, "local": True}
    with pytest.raises(HsmError) as info:
        token.try_export(label)  # reads CKA_VALUE / CKA_PRIVATE_EXPONENT, then tries C_WrapKey
    assert info.value.kind is HsmErrorKind.REFUSED
    key = token.key(label)
    if spec != "aes-256":
        with pytest.raises(HsmError):
            key.private_numbers()  # type: ignore[union-attr]


def test_generate_refuses_duplicate_label(token: Token) -> None:
    token.generate(KeySpec.parse("ec-p256"), "test/dup")
    with pytest.raises(HsmError) as info:
        token.generate(KeySpec.parse("ec-p256"), "test/dup")
    assert info.value.kind is HsmErrorKind.KEY_EXISTS


def test_missing_key_is_a_clear_error(token: Token) -> None:
    with pytest.raises(HsmError) as info:
        token.key("no/such/key")
    assert info.value.kind is HsmErrorKind.KEY_MISSING


@pytest.mark.parametrize("spec", ["ec-p256", "ec-p384", "rsa-2048"])
def test_cryptography_builders_sign_with_token_keys(token: Token, spec: str) -> None:
    label = f"test/builder-{spec}"
    key = token.generate(KeySpec.parse(spec), label)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "HSM test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[union-attr]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert.verify_directly_issued_by(cert)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    assert crl.is_signature_valid(key.public_key())  # type: ignore[union-attr,arg-type]


def test_rsa_pss_and_prehashed(token: Token) -> None:
    key = token.generate(KeySpec.parse("rsa-2048"), "test/pss")
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    sig = key.sign(b"hello", pss, hashes.SHA256())  # type: ignore[call-arg]
    key.public_key().verify(sig, b"hello", pss, hashes.SHA256())  # type: ignore[union-attr,call-arg]
    ec_key = token.generate(KeySpec.parse("ec-p256"), "test/prehashed")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(b"hello")
    sig = ec_key.sign(digest.finalize(), ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # type: ignore[union-attr]
    ec_key.public_key().verify(sig, b"hello", ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]


def test_jws_es256_is_raw_r_s_and_verifies(token: Token) -> None:
    key = token.generate(KeySpec.parse("ec-p256"), "test/jws")
    raw = sign_jws(key, "ES256", b"header.payload")  # type: ignore[arg-type]
    assert len(raw) == 64
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.public_key().verify(der, b"header.payload", ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
    rsa_key = token.generate(KeySpec.parse("rsa-2048"), "test/jws-rsa")
    sig = sign_jws(rsa_key, "RS256", b"header.payload")  # type: ignore[arg-type]
    rsa_key.public_key().verify(sig, b"header.payload", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
    with pytest.raises(HsmError):
        sign_jws(key, "RS256", b"x")  # type: ignore[arg-type]


def test_aes_wrap_round_trip_and_tamper(token: Token) -> None:
    kek = token.generate(KeySpec.parse("aes-256"), "test/kek")
    blob = kek.wrap(b"data key bytes", aad=b"ctx")  # type: ignore[union-attr]
    assert kek.unwrap(blob, aad=b"ctx") == b"data key bytes"  # type: ignore[union-attr]
    with pytest.raises(HsmError):
        kek.unwrap(blob, aad=b"other")  # type: ignore[union-attr]
    with pytest.raises(HsmError):
        kek.unwrap(blob[:-1] + bytes([blob[-1] ^ 1]), aad=b"ctx")  # type: ignore[union-attr]


def test_many_threads_sign_at_once(token: Token) -> None:
    key = token.generate(KeySpec.parse("ec-p256"), "test/threads")
    public = key.public_key()  # type: ignore[union-attr]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(50):
                msg = f"{n}-{i}".encode()
                public.verify(key.sign(msg, ec.ECDSA(hashes.SHA256())), msg, ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_two_processes_sign_at_once(token_pool, token: Token) -> None:  # type: ignore[no-untyped-def]
    token.generate(KeySpec.parse("ec-p256"), "test/procs")
    script = textwrap.dedent(
        f"""
        import sys
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from hsm.token import Token, TokenConfig
        t = Token(TokenConfig({token_pool.module!r}, {token.config.label!r}, {TOKEN_PIN!r}))
        k = t.key("test/procs")
        for i in range(300):
            m = f"{{sys.argv[1]}}-{{i}}".encode()
            k.public_key().verify(k.sign(m, ec.ECDSA(hashes.SHA256())), m, ec.ECDSA(hashes.SHA256()))
        print("ok")
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert all(out.strip() == "ok" for out, _ in results)


def test_wrong_pin_is_a_clear_error(token_pool) -> None:  # type: ignore[no-untyped-def]
    # A fresh process: PKCS#11 login state is per application, so this must not reuse our login.
    script = textwrap.dedent(
        f"""
        from hsm.errors import HsmError
        from hsm.token import Token, TokenConfig
        try:
            Token(TokenConfig({token_pool.module!r}, {token_pool.labels[-1]!r}, "wrong-pin"))
        except HsmError as exc:
            print(exc.kind.value)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "wrong_pin", done.stderr
    assert "Traceback" not in done.stderr


def test_missing_token_is_a_clear_error(token_pool) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HsmError) as info:
        Token(TokenConfig(token_pool.module, "no-such-token", TOKEN_PIN))
    assert info.value.kind is HsmErrorKind.TOKEN_MISSING


def test_missing_module_is_a_clear_error() -> None:
    with pytest.raises(HsmError) as info:
        Token(TokenConfig("/nonexistent/libpkcs11.so", "x", TOKEN_PIN))
    assert info.value.kind is HsmErrorKind.MODULE_MISSING


def test_injected_device_error_then_recovery(token: Token) -> None:
    key = token.generate(KeySpec.parse("ec-p256"), "test/fault")
    calls = {"n": 0}

    def fail_second_sign(op: str) -> None:
        if op == "sign":
            calls["n"] += 1
            if calls["n"] == 2:
                raise HsmError(HsmErrorKind.DEVICE_ERROR, "injected CKR_DEVICE_ERROR")

    token.fault_hook = fail_second_sign
    try:
        key.sign(b"1", ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
        with pytest.raises(HsmError) as info:
            key.sign(b"2", ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
        assert info.value.kind is HsmErrorKind.DEVICE_ERROR
        key.sign(b"3", ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
    finally:
        token.fault_hook = None


def test_keyspec_refuses_weak_or_unknown() -> None:
    for bad in ("rsa-1024", "ec-p192", "aes-128", "dsa-2048"):
        with pytest.raises(ValueError):
            KeySpec.parse(bad)
    assert SO_PIN  # the pool's SO PIN is set (token initialisation needs it)


def test_a_batch_of_digests_is_signed_across_borrows_each_signature_observed(token: Token) -> None:
    """``sign_digests_raw`` (sealing a batch of records): one signature per digest, in order, across
    several session borrows; each passes the fault hook and is timed for the observer."""
    import hashlib

    key = token.generate(KeySpec.parse("ec-p256"), "test/batch")
    public = key.public_key()  # type: ignore[union-attr]
    messages = [f"record {i}".encode() for i in range(70)]
    seen: list[str] = []
    token.fault_hook, token.observer = seen.append, None
    try:
        raw = key.sign_digests_raw([hashlib.sha256(m).digest() for m in messages], per_borrow=32)  # type: ignore[union-attr]
    finally:
        token.fault_hook = None
    assert len(raw) == len(messages) and seen == ["sign"] * len(messages)
    for message, sig in zip(messages, raw, strict=True):
        der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidSignature: the order matters
        public.verify(utils.encode_dss_signature(int.from_bytes(raw[1][:32], "big"), int.from_bytes(raw[1][32:], "big")), messages[0], ec.ECDSA(hashes.SHA256()))
