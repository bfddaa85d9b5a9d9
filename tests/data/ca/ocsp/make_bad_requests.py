"""Make the malformed OCSP requests of tests/ca/test_ocsp.py (see README.md). Deterministic
except for the throwaway issuer key, whose identity does not matter: every file is refused
before the issuer is looked at."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from asn1crypto import ocsp as a_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent


def issuer() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throwaway issuer")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )


def main() -> None:
    ca = issuer()
    valid = ocsp.OCSPRequestBuilder().add_certificate(ca, ca, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)
    files = {
        "garbage.der": b"this is not an OCSP request\x00\x01\x02",
        "truncated.der": valid[: len(valid) // 2],
        "trailing_data.der": valid + b"\x00\x00junk",
        "long_nonce.der": ocsp.OCSPRequestBuilder().add_certificate(ca, ca, hashes.SHA1())
        .add_extension(x509.OCSPNonce(b"\x5a" * 64), critical=False).build().public_bytes(serialization.Encoding.DER),
    }
    parsed = a_ocsp.OCSPRequest.load(valid)
    one = parsed["tbs_request"]["request_list"][0]
    two = a_ocsp.OCSPRequest({"tbs_request": {"request_list": [one, one]}})
    files["two_requests.der"] = two.dump()
    files["empty_request_list.der"] = a_ocsp.OCSPRequest({"tbs_request": {"request_list": []}}).dump()
    zero = a_ocsp.OCSPRequest.load(valid).copy()
    zero["tbs_request"]["request_list"][0]["req_cert"]["serial_number"] = 0
    files["zero_serial.der"] = zero.dump(force=True)
    for name, data in files.items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
