"""PAdES sealing checked three ways: our report, poppler's ``pdfsig`` (with our root trusted in an
NSS database) and, for CAdES records, ``openssl cms``."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import pytest

from core.security import Actor
from signing import pades, service
from tests.signing.conftest import DATA

LEVELS = ["B-B", "B-T", "B-LT", "B-LTA"]


def _seal(rt, seal_id: str, pdf: bytes, **options) -> service.SealedPdf:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        return service.seal_pdf(rt, db, Actor.cli(), seal_id=seal_id, pdf=pdf, options=pades.PadesOptions(**options))


def pdfsig(path: Path, nss: Path | None = None) -> str:
    """pdfsig with its online OCSP check: the tests that call it run the live server (``live``), so
    NSS asks our OCSP responder at the URL the seal certificate carries."""
    args = ["pdfsig"] + (["-nssdir", f"sql:{nss}"] if nss else []) + [str(path)]
    for attempt in range(3):
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        out = done.stdout + done.stderr  # pdfsig exits 0 either way: its verdict is in the text
        # NSS reports a failed OCSP *fetch* (a busy loopback server on a loaded CI machine) as this
        # generic error; a wrong answer or an untrusted chain says something else and is not retried.
        if "Unknown issue with Certificate" not in out or attempt == 2:
            return out
        time.sleep(1.0)
    return out


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_passes_our_report_and_pdfsig(rt, live, seal, licence_pdf, pki, tmp_path, level) -> None:  # type: ignore[no-untyped-def]
    sealed = _seal(rt, seal.id, licence_pdf, level=level)
    report = service.verify_document(rt, sealed.pdf)
    assert report.indication.value == "TOTAL-PASSED", report.as_dict()
    seals = [s for s in report.signatures if s.format == "PAdES"]
    assert len(seals) == 1 and seals[0].level == level and seals[0].signer.seal_id == seal.id
    assert seals[0].revocation.status == "good"
    assert seals[0].signing_time_source == ("claimed" if level == "B-B" else "timestamp")
    doc_ts = [s for s in report.signatures if s.format == "PDF-TSA"]
    assert len(doc_ts) == (1 if level == "B-LTA" else 0)
    assert report.document.registered_id == sealed.document.id
    path = tmp_path / f"{level}.pdf"
    path.write_bytes(sealed.pdf)
    out = pdfsig(path, pki / "nss")
    seal_part = out.split("Signature #2:")[0]  # poppler 22 cannot validate the B-LTA document timestamp (#2)
    assert "Signature Validation: Signature is Valid." in seal_part and "Certificate Validation: Certificate is Trusted." in seal_part, out
    assert out.count("Signature #") == (2 if level == "B-LTA" else 1)
    assert "ETSI.CAdES.detached" in out and "行政审批专用章" in out
    # without our root in the NSS database pdfsig does not trust the seal
    assert "Certificate is Trusted" not in pdfsig(path)


def test_flipped_byte_is_a_digest_mismatch_for_pdfsig_and_total_failed_for_us(rt, live, seal, licence_pdf, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sealed = _seal(rt, seal.id, licence_pdf, level="B-T")
    data = bytearray(sealed.pdf)
    at = data.index(b"/MediaBox")
    data[at + 1] ^= 0x20  # /MediaBox → /mediaBox: inside the first signed range
    path = tmp_path / "flipped.pdf"
    path.write_bytes(bytes(data))
    out = pdfsig(path, pki / "nss")
    assert "Digest Mismatch" in out, out
    report = service.verify_document(rt, bytes(data))
    assert report.indication.value == "TOTAL-FAILED" and report.sub_indication.value == "HASH_FAILURE"
    assert report.signatures[0].reasons == ("digest_mismatch",) and report.colour == "red"


def test_two_seals_on_one_document_as_incremental_updates(rt, live, department, seal, licence_pdf, pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with rt.db.transaction() as db:
        second = service.create_seal(rt, db, Actor.cli(), name="合同专用章", department=department.id)
    first = _seal(rt, seal.id, licence_pdf, level="B-T")
    both = _seal(rt, second.id, first.pdf, level="B-LT", placement=pades.Placement(box=(60, 40, 280, 124)))
    assert both.pdf.startswith(first.pdf)  # incremental: the first revision is untouched
    report = service.verify_document(rt, both.pdf)
    assert report.indication.value == "TOTAL-PASSED", report.as_dict()
    by_seal = {s.signer.seal_id: s for s in report.signatures}
    assert by_seal[seal.id].coverage.modifications == "later-signatures" and not by_seal[seal.id].coverage.whole_document
    assert "later_signatures_added" in by_seal[seal.id].warnings
    assert by_seal[second.id].level == "B-LT"
    path = tmp_path / "two.pdf"
    path.write_bytes(both.pdf)
    out = pdfsig(path, pki / "nss")
    assert out.count("Signature is Valid.") == 2 and out.count("Certificate is Trusted.") == 2, out


def test_content_changed_after_sealing_is_total_failed(rt, seal, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    sealed = _seal(rt, seal.id, licence_pdf, level="B-T")
    w = IncrementalPdfFileWriter(io.BytesIO(sealed.pdf))
    page = w.root["/Pages"]["/Kids"][0].get_object()
    stream = generic.StreamObject(stream_data=b"BT /F1 24 Tf 100 700 Td (FORGED) Tj ET")
    page["/Contents"] = w.add_object(stream)
    w.update_container(page)
    out = io.BytesIO()
    w.write(out)
    report = service.verify_document(rt, out.getvalue())
    assert report.indication.value == "TOTAL-FAILED" and report.sub_indication.value == "SIG_CONSTRAINTS_FAILURE", report.as_dict()
    assert report.signatures[0].coverage.modifications == "other"


def test_certification_signature_then_approval(rt, seal, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    certified = _seal(rt, seal.id, licence_pdf, level="B-T", certify=True, docmdp=2)
    report = service.verify_document(rt, certified.pdf)
    assert report.indication.value == "TOTAL-PASSED" and report.signatures[0].coverage.certification == 2
    approved = _seal(rt, seal.id, certified.pdf, level="B-T", placement=pades.Placement(box=(60, 40, 280, 124)))
    assert service.verify_document(rt, approved.pdf).indication.value == "TOTAL-PASSED"
    locked = _seal(rt, seal.id, licence_pdf, level="B-B", certify=True, docmdp=1)
    from core.errors import Problem

    with pytest.raises(Problem) as caught:
        _seal(rt, seal.id, locked.pdf, level="B-B", placement=pades.Placement(box=(60, 40, 280, 124)))
    assert caught.value.code == "signing.document_locked", caught.value.detail


def foreign_signed(pdf: bytes) -> bytes:
    """``pdf`` signed (PAdES B-B) with a software key and a self-signed certificate we never issued."""
    import datetime

    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    from signing.signer import HsmSigner

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "伪造印章"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "不存在的单位")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True).sign(key, hashes.SHA256())
    )
    signer = HsmSigner(key, asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)))
    meta = signers.PdfSignatureMetadata(field_name="Forged", subfilter=fields.SigSeedSubFilter.PADES)
    return signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer).getvalue()


def test_a_foreign_self_signed_signature_is_indeterminate(rt, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    """Signed by a key and certificate we never issued: intact, but no chain to our anchors (amber)."""
    report = service.verify_document(rt, foreign_signed(licence_pdf))
    assert report.indication.value == "INDETERMINATE" and report.colour == "amber", report.as_dict()
    assert report.signatures[0].intact and report.signatures[0].crypto_valid and not report.signatures[0].trusted
    assert report.signatures[0].signer.seal_id is None


def test_unsigned_pdf_fails_with_format_failure(rt, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    report = service.verify_document(rt, licence_pdf)
    assert report.indication.value == "TOTAL-FAILED" and report.sub_indication.value == "FORMAT_FAILURE" and not report.signatures


def test_revoked_seal_after_timestamped_sealing_still_passes_with_a_warning(rt, department, licence_pdf) -> None:  # type: ignore[no-untyped-def]
    from ca import revocation

    with rt.db.transaction() as db:
        doomed = service.create_seal(rt, db, Actor.cli(), name="临时专用章", department=department.id)
    stamped = _seal(rt, doomed.id, licence_pdf, level="B-T")
    unstamped = _seal(rt, doomed.id, licence_pdf, level="B-B")
    time.sleep(1.1)  # revocation times have one-second granularity (RFC 5280 GeneralizedTime without fractions)
    with rt.db.transaction() as db:
        revocation.revoke(rt, db, Actor.cli(), serial=doomed.cert_serial, reason="keyCompromise")
    report = service.verify_document(rt, stamped.pdf)
    sig = report.signatures[0]
    assert sig.revocation.status == "revoked" and report.indication.value == "TOTAL-PASSED", report.as_dict()
    assert "certificate_revoked_after_signing_time" in sig.warnings
    report = service.verify_document(rt, unstamped.pdf)
    assert report.indication.value == "INDETERMINATE" and report.sub_indication.value == "REVOKED_NO_POE"


def test_seal_placed_by_field_name(rt, seal) -> None:  # type: ignore[no-untyped-def]
    sealed = _seal(rt, seal.id, (DATA / "with_field.pdf").read_bytes(), level="B-B", placement=pades.Placement(field="DeptSeal"))
    report = service.verify_document(rt, sealed.pdf)
    assert [s.id for s in report.signatures] == ["DeptSeal"] and report.indication.value == "TOTAL-PASSED"
