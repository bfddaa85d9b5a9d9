"""Validation of sealed PDFs (PAdES) into the report model of :mod:`signing.report`.

pyHanko checks integrity, the CMS signature, the chain to our trust anchors and the incremental
updates after each signature; this module turns its findings into ETSI TS 119 102-1 indications:

1. not intact (the signed byte ranges do not hash to the signed digest) → TOTAL-FAILED/HASH_FAILURE
2. signature value wrong → TOTAL-FAILED/SIG_CRYPTO_FAILURE
3. anything changed after signing other than later signatures, DSS updates or document
   timestamps (PAdES, ETSI EN 319 142-1 §5.4) → TOTAL-FAILED/SIG_CONSTRAINTS_FAILURE
4. signer certificate revoked before the (proved) signing time → TOTAL-FAILED/REVOKED; revoked and
   no proof the signature is older → INDETERMINATE/REVOKED_NO_POE
5. chain / time / revocation problems pyHanko names → INDETERMINATE with that sub-indication
6. otherwise TOTAL-PASSED.

When the signature carries a valid timestamp the certificate is validated *at that time*
(ETSI TS 119 102-1 §5.5, validation with time), so a seal revoked or expired after it sealed a
document still validates, with a warning.

No network fetching happens during verification (no SSRF from an uploaded file): revocation data
comes from the document (DSS, CMS) and from the platform's own register in-process.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import cms, crl, ocsp
from asn1crypto import x509 as asn1_x509

from core import clock
from core.errors import Kind, Problem
from signing.pades import MAX_PAGES
from signing.report import (
    CertificateInfo,
    Coverage,
    DocumentInfo,
    Indication,
    Report,
    Revocation,
    SignatureReport,
    Signer,
    SubIndication,
    Timestamp,
    overall,
)

POLICY = "eAuth signature validation policy 1 (ETSI TS 119 102-1 basic/with-time; PAdES EN 319 142-1)"
OID_ORGANIZATION_IDENTIFIER = "2.5.4.97"


@dataclass(frozen=True)
class TrustSetup:
    """What a verifier trusts and knows, prepared once per process (and refreshed by the caller).

    ``register``: the platform's own certificate register — given a certificate, its revocation
    state (``Revocation``) if we issued it, else ``None``. ``seal_of``: certificate serial (hex) → our
    seal record (id, name, department id) if it is one of our seals.
    """

    anchors: tuple[asn1_x509.Certificate, ...]
    intermediates: tuple[asn1_x509.Certificate, ...] = ()
    crls: tuple[crl.CertificateList, ...] = ()
    ocsps: tuple[ocsp.OCSPResponse, ...] = ()
    register: Callable[[asn1_x509.Certificate], Revocation | None] = field(default=lambda cert: None)
    seal_of: Callable[[str], tuple[str, str, str] | None] = field(default=lambda serial: None)

    @property
    def anchor_names(self) -> tuple[str, ...]:
        return tuple(a.subject.human_friendly for a in self.anchors)


# -- helpers ---------------------------------------------------------------------------------------


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def cert_info(cert: asn1_x509.Certificate, anchors: Iterable[asn1_x509.Certificate] = ()) -> CertificateInfo:
    validity = cert["tbs_certificate"]["validity"]
    return CertificateInfo(
        subject=cert.subject.human_friendly,
        issuer=cert.issuer.human_friendly,
        serial=format(cert.serial_number, "x"),
        not_before=validity["not_before"].native.isoformat(),
        not_after=validity["not_after"].native.isoformat(),
        sha256=hashlib.sha256(cert.dump()).hexdigest(),
        trust_anchor=any(cert.dump() == a.dump() for a in anchors),
    )


def signer_of(cert: asn1_x509.Certificate, setup: TrustSetup) -> Signer:
    subject = cert.subject.native
    uscc = None
    for rdn in cert.subject.chosen:
        for attr in rdn:
            if attr["type"].dotted == OID_ORGANIZATION_IDENTIFIER:
                uscc = _organisation_number(str(attr["value"].native))
    if uscc is None:
        uscc = _uscc_extension(cert)
    seal = setup.seal_of(format(cert.serial_number, "x"))
    return Signer(
        name=str(subject.get("common_name", cert.subject.human_friendly)),
        organisation=subject.get("organization_name"),
        uscc=uscc,
        seal_id=seal[0] if seal else None,
        seal_name=seal[1] if seal else None,
        department_id=seal[2] if seal else None,
    )


def _organisation_number(identifier: str) -> str:
    """The registration number in an organizationIdentifier: ``NTRCN-<USCC>`` (ETSI EN 319 412-1
    §5.1.4: scheme, country, hyphen, number) gives the USCC; any other form is shown as it is."""
    if len(identifier) > 6 and identifier[:3].isalpha() and identifier[3:5].isalpha() and identifier[5] == "-" and identifier[:5].upper() == "NTRCN":
        return identifier[6:]
    return identifier


OID_USCC_EXTENSION = "1.2.156.10260.4.1.3"  # GB/T 20518: the organisation's unified social credit code


def _uscc_extension(cert: asn1_x509.Certificate) -> str | None:
    from asn1crypto import core as asn1_core

    for ext in cert["tbs_certificate"]["extensions"] or []:
        if ext["extn_id"].dotted == OID_USCC_EXTENSION:
            try:
                value = asn1_core.load(ext["extn_value"].native).native
            except (ValueError, TypeError):
                return None
            return value if isinstance(value, str) else None
    return None


def tst_time(signed_data: cms.SignedData) -> datetime | None:
    """genTime of the signature timestamp (unsigned attribute), without validating it.

    Walks the attributes by OID: ``.native`` on the attribute set would decode the whole token with
    its certificates (≈ 0.2 s per signature here)."""
    from asn1crypto import core as asn1_core

    try:
        attrs = signed_data["signer_infos"][0]["unsigned_attrs"]
        if isinstance(attrs, asn1_core.Void):
            return None
        for attr in attrs:
            if attr["type"].dotted == OID_SIGNATURE_TIME_STAMP_TOKEN:
                token = attr["values"][0]
                return token["content"]["encap_content_info"]["content"].parsed["gen_time"].native
    except (KeyError, ValueError, TypeError, IndexError, AttributeError):
        return None
    return None


OID_SIGNATURE_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"  # id-aa-signatureTimeStampToken (RFC 3161 Appendix A)


def _sub(indic: Any) -> SubIndication:
    name = getattr(indic, "name", None) or ""
    if name == "REVOCATION_OUT_OF_BOUNDS_NO_POE":
        name = "OUT_OF_BOUNDS_NO_POE"
    try:
        return SubIndication[name]
    except KeyError:
        return SubIndication.GENERIC


def _validation_context(setup: TrustSetup, *, moment: datetime | None, extra_certs: Iterable[Any] = (), extra_crls: Iterable[Any] = (), extra_ocsps: Iterable[Any] = ()) -> Any:
    from pyhanko_certvalidator import ValidationContext

    return ValidationContext(
        trust_roots=list(setup.anchors),
        other_certs=[*setup.intermediates, *extra_certs],
        crls=[*setup.crls, *extra_crls],
        ocsps=[*setup.ocsps, *extra_ocsps],
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=moment,
        retroactive_revinfo=True,
    )


# -- PDF -------------------------------------------------------------------------------------------


def _diff_policy() -> Any:
    """pyHanko's standard modification policy, except that a new *visible* signature field may be
    added after a certification signature with P ≥ 2 (ISO 32000-1 §12.8.2.2.2: P=2 permits
    "filling in forms and signing"; Acrobat accepts it, pyHanko's default refuses it): one
    department certifies a licence, another then approves it with its visible seal."""
    global _DIFF_POLICY
    if _DIFF_POLICY is None:
        from pyhanko.sign.diff_analysis import policies
        from pyhanko.sign.diff_analysis.form_rules_api import FormUpdatingRule
        from pyhanko.sign.diff_analysis.rules.file_structure_rules import ObjectStreamRule, XrefStreamRule
        from pyhanko.sign.diff_analysis.rules.form_field_rules import GenericFieldModificationRule, SigFieldCreationRule, SigFieldModificationRule
        from pyhanko.sign.diff_analysis.rules.metadata_rules import DocInfoRule, MetadataUpdateRule
        from pyhanko.sign.diff_analysis.policy_api import ModificationLevel

        _DIFF_POLICY = policies.StandardDiffPolicy(
            global_rules=[
                policies.CatalogModificationRule(),
                DocInfoRule().as_qualified(ModificationLevel.LTA_UPDATES),
                XrefStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
                ObjectStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
                policies.DSSCompareRule().as_qualified(ModificationLevel.LTA_UPDATES),
                MetadataUpdateRule().as_qualified(ModificationLevel.LTA_UPDATES),
            ],
            form_rule=FormUpdatingRule(field_rules=[SigFieldCreationRule(allow_new_visible_after_certify=True), SigFieldModificationRule(), GenericFieldModificationRule()]),
        )
    return _DIFF_POLICY


_DIFF_POLICY: Any = None


@dataclass
class _Dss:
    certs: list[asn1_x509.Certificate] = field(default_factory=list)
    crls: list[crl.CertificateList] = field(default_factory=list)
    ocsps: list[ocsp.OCSPResponse] = field(default_factory=list)
    revision: int | None = None  # last revision that changed the DSS
    first_revision: int | None = None  # first revision that has a DSS

    def has_revinfo_for(self, cert: asn1_x509.Certificate) -> bool:
        serial = cert.serial_number
        for resp in self.ocsps:
            try:
                for single in resp["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]:
                    if single["cert_id"]["serial_number"].native == serial:
                        return True
            except (KeyError, ValueError, TypeError, AttributeError):
                continue
        issuer = cert.issuer.dump()
        return any(c["tbs_cert_list"]["issuer"].dump() == issuer for c in self.crls)


def _read_dss(reader: Any) -> _Dss:
    from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError

    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return _Dss()
    except Exception:  # noqa: BLE001 - a malformed DSS is reported as absent, never a 500
        return _Dss()
    out = _Dss()
    try:
        out.certs = list(dss.load_certs())
        out.ocsps = [ocsp.OCSPResponse.load(b) for b in dss._ocsps_seen]
        out.crls = [crl.CertificateList.load(b) for b in dss._crls_seen]
        ref = reader.root.raw_get("/DSS")
        if hasattr(ref, "reference"):
            out.revision = reader.xrefs.get_last_change(ref.reference)
        for rev in range(reader.xrefs.total_revisions):
            if "/DSS" in reader.get_historical_root(rev):
                out.first_revision = rev
                break
    except Exception:  # noqa: BLE001
        pass
    return out


def open_for_verification(data: bytes, *, max_bytes: int) -> Any:
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    if len(data) > max_bytes:
        raise Problem(Kind.TOO_LARGE, "verify.too_large", f"documents are limited to {max_bytes} bytes")
    if b"%PDF-" not in data[:1024]:
        raise Problem(Kind.UNSUPPORTED_MEDIA_TYPE, "verify.not_pdf", "the document is not a PDF")
    if b"%%EOF" not in data[-2048:]:
        raise Problem(Kind.INVALID_INPUT, "verify.pdf_truncated", "the PDF is truncated (no %%EOF marker at the end)")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            raise Problem(Kind.INVALID_INPUT, "verify.pdf_encrypted", "encrypted PDFs cannot be verified here")
        pages = int(reader.root["/Pages"]["/Count"])
        if pages > MAX_PAGES:
            raise Problem(Kind.TOO_LARGE, "verify.too_many_pages", f"documents are limited to {MAX_PAGES} pages (this one declares {pages})")
    except Problem:
        raise
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError, OSError) as exc:
        raise Problem(Kind.INVALID_INPUT, "verify.pdf_unreadable", f"the PDF cannot be read: {str(exc)[:200] or type(exc).__name__}") from None
    return reader


def verify_pdf(data: bytes, setup: TrustSetup, *, max_bytes: int, name: str | None = None, registered: tuple[str, str, str] | None = None) -> Report:
    """Validate every signature and document timestamp of a PDF."""
    reader = open_for_verification(data, max_bytes=max_bytes)
    return asyncio.run(_verify_pdf(reader, data, setup, name=name, registered=registered))


async def _verify_pdf(reader: Any, data: bytes, setup: TrustSetup, *, name: str | None, registered: tuple[str, str, str] | None) -> Report:
    from pyhanko.pdf_utils.misc import PdfError

    try:
        embedded = list(reader.embedded_signatures)
        total_revisions = reader.xrefs.total_revisions
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        raise Problem(Kind.INVALID_INPUT, "verify.pdf_unreadable", f"the PDF signatures cannot be read: {str(exc)[:200]}") from None
    dss = _read_dss(reader)
    signature_fields = {e.field_name for e in embedded}
    doc_timestamps: list[tuple[Any, Any]] = []  # (embedded, status or exception)
    reports: list[SignatureReport] = []
    for emb in embedded:
        if emb.sig_object_type == "/DocTimeStamp":
            doc_timestamps.append((emb, await _doc_timestamp(emb, setup, dss)))
    for emb in embedded:
        if emb.sig_object_type == "/DocTimeStamp":
            continue
        reports.append(await _signature_report(emb, setup, dss, signature_fields, doc_timestamps, total_revisions))
    for emb, result in doc_timestamps:
        reports.append(_doc_timestamp_report(emb, result, setup, signature_fields))
    indication, sub = overall(tuple(reports))
    try:
        pages = int(reader.root["/Pages"]["/Count"])
    except (KeyError, TypeError, ValueError):
        pages = None
    return Report(
        document=DocumentInfo(
            kind="pdf",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            name=name,
            registered_id=registered[0] if registered else None,
            registered_seal=registered[1] if registered else None,
            registered_at=registered[2] if registered else None,
            pages=pages,
            revisions=total_revisions,
        ),
        indication=indication,
        sub_indication=sub,
        signatures=tuple(reports),
        validated_at=clock.now().isoformat(),
        policy=POLICY,
        trust_anchors=setup.anchor_names,
    )


async def _doc_timestamp(emb: Any, setup: TrustSetup, dss: _Dss) -> Any:
    from pyhanko.sign.validation import async_validate_pdf_timestamp

    vc = _validation_context(setup, moment=None, extra_certs=dss.certs, extra_crls=dss.crls, extra_ocsps=dss.ocsps)
    try:
        return await async_validate_pdf_timestamp(emb, validation_context=vc)
    except Exception as exc:  # noqa: BLE001 - reported as a failed timestamp
        return exc


def _doc_timestamp_report(emb: Any, result: Any, setup: TrustSetup, signature_fields: set[str]) -> SignatureReport:
    if isinstance(result, Exception):
        return SignatureReport(
            id=str(emb.field_name),
            format="PDF-TSA",
            indication=Indication.TOTAL_FAILED,
            sub_indication=SubIndication.FORMAT_FAILURE,
            signer=Signer(name="?"),
            signing_time=None,
            signing_time_source="none",
            level=None,
            chain=(),
            revocation=Revocation("not_checked", "none"),
            coverage=None,
            reasons=("timestamp_unreadable",),
        )
    status = result
    cert = status.signing_cert
    coverage = _coverage(emb, status, signature_fields)
    indication, sub, reasons = _indicate(status, coverage, revoked=None, ts_ok=True)
    chain = tuple(cert_info(c, setup.anchors) for c in status.validation_path.iter_certs(include_root=True)) if status.validation_path else (cert_info(cert),)
    return SignatureReport(
        id=str(emb.field_name),
        format="PDF-TSA",
        indication=indication,
        sub_indication=sub,
        signer=signer_of(cert, setup),
        signing_time=_iso(status.timestamp),
        signing_time_source="timestamp",
        level=None,
        chain=chain,
        revocation=setup.register(cert) or Revocation("unknown", "none"),
        coverage=coverage,
        timestamps=(Timestamp(_iso(status.timestamp) or "", cert.subject.human_friendly, status.intact and status.valid, status.trusted, "document"),),
        intact=status.intact,
        crypto_valid=status.valid,
        trusted=status.trusted,
        digest_algorithm=status.md_algorithm,
        signature_algorithm=status.pkcs7_signature_mechanism,
        reasons=reasons,
    )


def _coverage(emb: Any, status: Any, signature_fields: set[str]) -> Coverage:
    from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    diff = status.diff_result
    changed: tuple[str, ...] = ()
    if whole:
        modifications = "none"
    elif status.coverage != SignatureCoverageLevel.ENTIRE_REVISION:
        modifications = "other"
    elif diff is None or isinstance(diff, SuspiciousModification):
        modifications = "other"
    else:
        level = diff.modification_level
        changed = tuple(sorted(diff.changed_form_fields))
        if level == ModificationLevel.NONE:
            modifications = "none"
        elif level == ModificationLevel.LTA_UPDATES:
            modifications = "dss-or-timestamps"
        elif level == ModificationLevel.FORM_FILLING:
            # A later seal adds its signature field and fills it: allowed. Any other field
            # changing value is a modification of what was sealed.
            modifications = "later-signatures" if set(changed) <= (signature_fields - {emb.field_name}) else "form-filling"
        elif level == ModificationLevel.ANNOTATIONS:
            modifications = "annotations"
        else:
            modifications = "other"
    try:
        revision = emb.signed_revision
    except AttributeError:
        revision = None
    docmdp = emb.docmdp_level
    return Coverage(
        whole_document=whole,
        covered_revision=revision,
        total_revisions=emb.reader.xrefs.total_revisions,
        modifications=modifications,
        changed_fields=changed,
        certification=docmdp.value if docmdp is not None and emb.sig_object.get("/Reference") is not None and _is_certification(emb) else None,
        docmdp_ok=status.docmdp_ok,
    )


def _is_certification(emb: Any) -> bool:
    try:
        perms = emb.reader.root.get("/Perms")
        return perms is not None and perms.get_object().raw_get("/DocMDP").get_object() is emb.sig_object
    except (KeyError, AttributeError):
        return False


ALLOWED_MODIFICATIONS = ("none", "later-signatures", "dss-or-timestamps")


def _indicate(status: Any, coverage: Coverage, *, revoked: Revocation | None, ts_ok: bool, ts_time: datetime | None = None) -> tuple[Indication, SubIndication | None, tuple[str, ...]]:
    if not status.intact:
        return Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE, ("digest_mismatch",)
    if not status.valid:
        return Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE, ("signature_value_invalid",)
    if coverage.modifications not in ALLOWED_MODIFICATIONS or coverage.docmdp_ok is False:
        return Indication.TOTAL_FAILED, SubIndication.SIG_CONSTRAINTS_FAILURE, (f"modified_after_signing:{coverage.modifications}",)
    if revoked is not None and revoked.status in ("revoked", "on_hold"):
        revoked_at = datetime.fromisoformat(revoked.revoked_at) if revoked.revoked_at else None
        if ts_time is not None and ts_ok and revoked_at is not None and ts_time < revoked_at:
            pass  # revoked after the proved signing time: still valid (with-time validation)
        elif ts_time is not None and ts_ok:
            return Indication.TOTAL_FAILED, SubIndication.REVOKED, ("certificate_revoked_before_signing",)
        else:
            return Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE, ("certificate_revoked_no_proof_of_time",)
    if status.trust_problem_indic is not None:
        sub = _sub(status.trust_problem_indic)
        if sub in (SubIndication.REVOKED,):
            return Indication.TOTAL_FAILED, sub, ("certificate_revoked",)
        return Indication.INDETERMINATE, sub, ("chain_or_time_problem",)
    if not status.trusted:
        return Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND, ("untrusted_chain",)
    if not ts_ok:
        return Indication.INDETERMINATE, SubIndication.GENERIC, ("signature_timestamp_invalid",)
    return Indication.TOTAL_PASSED, None, ()


async def _signature_report(emb: Any, setup: TrustSetup, dss: _Dss, signature_fields: set[str], doc_timestamps: list[tuple[Any, Any]], total_revisions: int) -> SignatureReport:
    from pyhanko.sign.validation.settings import KeyUsageConstraints
    from pyhanko.sign.validation import async_validate_pdf_signature

    ts_time = tst_time(emb.signed_data)
    extra = {"extra_certs": [*dss.certs, *emb.other_embedded_certs], "extra_crls": dss.crls, "extra_ocsps": dss.ocsps}
    signer_vc = _validation_context(setup, moment=ts_time, **extra)
    ts_vc = _validation_context(setup, moment=None, **extra)
    try:
        status = await async_validate_pdf_signature(
            emb,
            signer_validation_context=signer_vc,
            ts_validation_context=ts_vc,
            diff_policy=_diff_policy(),
            key_usage_settings=KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False),
        )
    except Exception as exc:  # noqa: BLE001 - an unreadable signature is a failed signature, not a 500
        return SignatureReport.unreadable(str(emb.field_name), "PAdES", exc)
    cert = status.signing_cert
    coverage = _coverage(emb, status, signature_fields)
    tsv = status.timestamp_validity
    ts_ok = tsv is None or (tsv.intact and tsv.valid and tsv.trusted)
    timestamps = []
    if tsv is not None:
        timestamps.append(Timestamp(_iso(tsv.timestamp) or "", tsv.signing_cert.subject.human_friendly, tsv.intact and tsv.valid, tsv.trusted, "signature"))
    lta_ts = []
    for ts_emb, ts_status in doc_timestamps:
        if isinstance(ts_status, Exception):
            continue
        if ts_emb.signed_revision > emb.signed_revision:
            ok = ts_status.intact and ts_status.valid and ts_status.trusted
            timestamps.append(Timestamp(_iso(ts_status.timestamp) or "", ts_status.signing_cert.subject.human_friendly, ts_status.intact and ts_status.valid, ts_status.trusted, "document"))
            if ok:
                lta_ts.append(ts_emb.signed_revision)
    # revocation: the platform register first (authoritative for our certificates), then the DSS
    revocation = setup.register(cert)
    warnings: list[str] = []
    if revocation is None:
        if dss.has_revinfo_for(cert):
            state = "revoked" if status.revocation_details is not None else ("good" if status.trusted else "unknown")
            revocation = Revocation(state, "embedded-dss", revoked_at=_iso(status.revocation_details.revocation_date) if status.revocation_details else None)
        elif status.revocation_details is not None:
            revocation = Revocation("revoked", "embedded-cms", revoked_at=_iso(status.revocation_details.revocation_date))
        else:
            revocation = Revocation("unknown", "none")
    indication, sub, reasons = _indicate(status, coverage, revoked=revocation, ts_ok=ts_ok, ts_time=tsv.timestamp if tsv is not None else None)
    if indication is Indication.TOTAL_PASSED and revocation.status == "unknown":
        indication, sub, reasons = Indication.INDETERMINATE, SubIndication.TRY_LATER, ("no_revocation_information",)
    if revocation.status in ("revoked", "on_hold") and indication is Indication.TOTAL_PASSED:
        warnings.append("certificate_revoked_after_signing_time")
    if coverage.modifications == "later-signatures":
        warnings.append("later_signatures_added")
    # level reached (EN 319 142-1 §6: each level includes the ones below)
    level = None
    if emb.sig_object.get("/SubFilter") == "/ETSI.CAdES.detached":
        level = "B-B"
        if tsv is not None and ts_ok:
            level = "B-T"
            chain_certs = list(status.validation_path.iter_certs(include_root=False)) if status.validation_path else [cert]
            if dss.certs and all(dss.has_revinfo_for(c) for c in chain_certs) and (dss.revision is None or dss.revision > emb.signed_revision):
                level = "B-LT"
                # B-LTA: a valid document timestamp over a revision that already holds the DSS
                # (pyHanko writes the DSS and the document timestamp in one revision, then the
                # timestamp's own validation data in a later DSS update).
                first = dss.first_revision if dss.first_revision is not None else dss.revision
                if any(rev >= (first or 0) for rev in lta_ts):
                    level = "B-LTA"
    if status.signer_reported_dt is not None and tsv is None:
        signing_time, source = status.signer_reported_dt, "claimed"
    elif tsv is not None and ts_ok:
        signing_time, source = tsv.timestamp, "timestamp"
    else:
        signing_time, source = status.signer_reported_dt, "claimed" if status.signer_reported_dt else "none"
    chain = tuple(cert_info(c, setup.anchors) for c in status.validation_path.iter_certs(include_root=True)) if status.validation_path else (cert_info(cert, setup.anchors),)
    return SignatureReport(
        id=str(emb.field_name),
        format="PAdES" if level else "PDF (adbe)",
        indication=indication,
        sub_indication=sub,
        signer=signer_of(cert, setup),
        signing_time=_iso(signing_time),
        signing_time_source=source,
        level=level,
        chain=chain,
        revocation=revocation,
        coverage=coverage,
        timestamps=tuple(timestamps),
        intact=status.intact,
        crypto_valid=status.valid,
        trusted=status.trusted,
        digest_algorithm=status.md_algorithm,
        signature_algorithm=status.pkcs7_signature_mechanism,
        reasons=reasons,
        warnings=tuple(warnings),
    )
