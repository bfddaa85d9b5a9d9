"""Regenerate the bad-CSR fixtures in this directory: `.venv/bin/python tests/data/ca/make_bad_csrs.py`.

Each file is described in README.md. Keys are generated fresh (the fixtures are about structure,
not particular key values); the files are committed so the tests read real bytes from disk.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fixture")])


def csr(key, *, ca: bool = False, algorithm=hashes.SHA256()) -> x509.CertificateSigningRequest:  # type: ignore[no-untyped-def]
    b = x509.CertificateSigningRequestBuilder().subject_name(NAME)
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return b.sign(key, algorithm)


def der(c: x509.CertificateSigningRequest) -> bytes:
    return c.public_bytes(serialization.Encoding.DER)


def main() -> None:
    good = der(csr(ec.generate_private_key(ec.SECP256R1())))
    (HERE / "garbage.csr").write_bytes(b"this is not a certificate request\n\x00\x01\x02\xff")
    (HERE / "truncated.der.csr").write_bytes(good[: len(good) // 2])
    (HERE / "trailing_data.der.csr").write_bytes(good + b"\x00\x00junk")
    pem = csr(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.PEM)
    (HERE / "pem_with_junk.csr").write_bytes(b"Here is my request:\n" + pem + b"thanks!\n")
    sig_broken = bytearray(good)
    sig_broken[-5] ^= 0x01  # inside the ECDSA signature's last INTEGER
    (HERE / "invalid_signature.der.csr").write_bytes(bytes(sig_broken))
    (HERE / "oversized.csr").write_bytes(pem.replace(b"-----END", b"A" * 20000 + b"\n-----END"))
    (HERE / "short_key.der.csr").write_bytes(der(csr(rsa.generate_private_key(public_exponent=65537, key_size=1024))))
    (HERE / "small_exponent.der.csr").write_bytes(der(csr(rsa.generate_private_key(public_exponent=3, key_size=2048))))
    (HERE / "ca_requested.der.csr").write_bytes(der(csr(ec.generate_private_key(ec.SECP256R1()), ca=True)))
    (HERE / "ed25519.der.csr").write_bytes(der(csr(ed25519.Ed25519PrivateKey.generate(), algorithm=None)))
    (HERE / "p521.der.csr").write_bytes(der(csr(ec.generate_private_key(ec.SECP521R1()), algorithm=hashes.SHA512())))
    # An uncompressed P-256 point whose y coordinate is changed: no longer on the curve.
    key = ec.generate_private_key(ec.SECP256R1())
    good_key = der(csr(key))
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    bad_point = point[:-1] + bytes([point[-1] ^ 0x01])
    (HERE / "invalid_ec_point.der.csr").write_bytes(good_key.replace(point, bad_point))
    (HERE / "empty.csr").write_bytes(b"")


if __name__ == "__main__":
    main()
