"""Sealed data records: JWS (JAdES baseline, ETSI TS 119 182-1) and CMS (CAdES, ETSI EN 319 122-1).

**JWS.** Protected header ``{"alg", "typ": "jose", "cty": "json", "x5c": [seal, CA…], "x5t#S256",
"sigT", "crit": ["sigT"]}`` — ``sigT`` is the claimed signing time (JAdES §5.2.1, a critical
header). B-B is the compact serialization, optionally with a detached payload (RFC 7515
Appendix F: the payload part is empty). B-T adds a signature timestamp in the unprotected header,
so it uses the flattened JSON serialization: ``"header": {"etsiU": [{"sigTst": {"tstTokens":
[{"val": base64(DER token)}]}}]}``, the token's imprint being SHA-256 over the ASCII of the
base64url JWS signature value (JAdES §5.3.4.1).

**CMS.** Detached CAdES-B-B / B-T (pyHanko over the HSM signer): ``signingCertificateV2``,
content type, message digest, signing time; B-T adds ``signature-time-stamp-token``.

Verification of both produces the same :class:`signing.report.Report` as PDFs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import datetime
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from core import clock
from core.errors import Kind, Problem
from signing.report import DocumentInfo, Indication, Report, Revocation, SignatureReport, Signer, SubIndication, Timestamp, overall
from signing.verify import POLICY, TrustSetup, _validation_context, cert_info, signer_of

JWS_ALGS = {"ES256": ("sha256", "ec"), "ES384": ("sha384", "ec"), "RS256": ("sha256", "rsa"), "PS256": ("sha256", "pss")}
MAX_RECORD_BYTES = 1024 * 1024


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    if any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_json(record: Any) -> bytes:
    """The bytes we sign for a JSON record: compact, keys sorted, UTF-8 (stable across clients)."""
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sniff(data: bytes) -> str | None:
    head = data[:1024].lstrip()
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if head[:1] == b"{" or (head[:3] == b"eyJ" and head.count(b".") >= 1) or data.strip().count(b".") == 2 and data.strip()[:2] == b"ey":
        return "jws"
    if head[:1] == b"\x30" or head.startswith(b"-----BEGIN"):
        return "cms"
    return None


# -- JWS sealing -------------------------------------------------------------------------------------


class JwsSealer:
    """Seals records with one seal key: header parts fixed per seal, one HSM signature per record.

    ``sign_digest(signing_input) -> signature`` signs one JWS signing input. ``sign_digests``
    (optional, EC keys) signs a list of digests of signing inputs — the hash named by
    :data:`JWS_ALGS` — in one token borrow; with it, :meth:`seal_many` hashes the shared
    ``BASE64URL(header) || '.'`` prefix once per batch (≈ 3 kB with the ``x5c`` chain) and only the
    payload per record.
    """

    def __init__(self, key: Any, chain_der: list[bytes], *, alg: str, sign_digest: Any, sign_digests: Any = None) -> None:
        self.key = key
        self.alg = alg
        self.x5c = [base64.b64encode(c).decode() for c in chain_der]
        self.x5t = b64u(hashlib.sha256(chain_der[0]).digest())
        self._sign_digest = sign_digest
        self._sign_digests = sign_digests
        self._hash_name = JWS_ALGS[alg][0] if alg in JWS_ALGS else "sha256"
        # a batch shares one signing time: (time, protected, hash state of "protected." for the
        # signature, sha256 state of the same for the register digest)
        self._protected: tuple[datetime, str, Any, Any] | None = None

    def header(self, signing_time: datetime) -> dict[str, Any]:
        return {
            "alg": self.alg,
            "typ": "jose",
            "cty": "json",
            "x5t#S256": self.x5t,
            "x5c": self.x5c,
            "sigT": signing_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "crit": ["sigT"],
        }

    def _protected_for(self, signing_time: datetime) -> tuple[datetime, str, Any, Any]:
        cached = self._protected
        if cached is None or cached[0] != signing_time:
            protected = b64u(json.dumps(self.header(signing_time), separators=(",", ":")).encode())
            prefix = f"{protected}.".encode("ascii")
            cached = (signing_time, protected, hashlib.new(self._hash_name, prefix), hashlib.sha256(prefix))
            self._protected = cached
        return cached

    def seal(self, payload: bytes, *, signing_time: datetime, detached: bool = False, timestamp: Any = None) -> str:
        """Compact JWS (B-B), or flattened JSON with a signature timestamp (B-T) when ``timestamp``
        (a callable digest → DER token) is given."""
        return self.seal_many([payload], signing_time=signing_time, detached=detached, timestamp=timestamp)[0][0]

    def seal_many(self, payloads: list[bytes], *, signing_time: datetime, detached: bool = False, timestamp: Any = None) -> list[tuple[str, str]]:
        """:meth:`seal` for each payload: ``(JWS text, SHA-256 hex of its ASCII bytes)`` each."""
        _, protected, sign_prefix, register_prefix = self._protected_for(signing_time)
        bodies = [b64u(p) for p in payloads]
        if self._sign_digests is not None:
            states = []
            for body in bodies:
                state = sign_prefix.copy()
                state.update(body.encode("ascii"))
                states.append(state)
            raw = self._sign_digests([state.digest() for state in states])
        else:
            raw = [self._sign_digest(f"{protected}.{body}".encode("ascii")) for body in bodies]
        out = []
        for body, sig in zip(bodies, raw, strict=True):
            signature = b64u(sig)
            if timestamp is None:
                text = f"{protected}.{'' if detached else body}.{signature}"
                state = register_prefix.copy()
                state.update(text[len(protected) + 1 :].encode("ascii"))
                out.append((text, state.hexdigest()))
                continue
            token = timestamp(hashlib.sha256(signature.encode("ascii")).digest())
            obj: dict[str, Any] = {"protected": protected, "header": {"etsiU": [{"sigTst": {"tstTokens": [{"val": base64.b64encode(token).decode()}]}}]}, "signature": signature}
            if not detached:
                obj["payload"] = body
            text = json.dumps(obj, separators=(",", ":"))
            out.append((text, hashlib.sha256(text.encode("ascii")).hexdigest()))
        return out


# -- JWS verification --------------------------------------------------------------------------------


def _jws_parts(data: bytes, detached: bytes | None) -> tuple[str, str | None, str, dict[str, Any]]:
    """(protected b64, payload b64 or None, signature b64, unprotected header)."""
    text = data.decode("utf-8").strip()
    if text.startswith("{"):
        obj = json.loads(text)
        if not isinstance(obj, dict) or "signatures" in obj:
            raise ValueError("only the flattened JSON serialization is supported")
        protected, signature = obj["protected"], obj["signature"]
        payload = obj.get("payload")
        header = obj.get("header") or {}
        if not all(isinstance(v, str) for v in (protected, signature)) or not isinstance(header, dict):
            raise ValueError("malformed JWS JSON")
    else:
        parts = text.split(".")
        if len(parts) != 3:
            raise ValueError("compact JWS has three parts")
        protected, payload, signature = parts
        payload = payload or None
        header = {}
    if payload is None:
        if detached is None:
            raise Problem(Kind.INVALID_INPUT, "verify.jws_payload_missing", "the JWS has a detached payload: send the record as well")
        payload = b64u(detached)
    return protected, payload, signature, header


def _verify_raw(public_key: Any, alg: str, signing_input: bytes, sig: bytes) -> bool:
    hash_name, family = JWS_ALGS[alg]
    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[hash_name]
    try:
        if family == "ec":
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                return False
            half = len(sig) // 2
            if len(sig) != 2 * ((public_key.curve.key_size + 7) // 8):
                return False
            public_key.verify(utils.encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")), signing_input, ec.ECDSA(algorithm))
        elif isinstance(public_key, rsa.RSAPublicKey):
            pad = padding.PKCS1v15() if family == "rsa" else padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
            public_key.verify(sig, signing_input, pad, algorithm)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def verify_jws(data: bytes, setup: TrustSetup, *, detached: bytes | None = None, name: str | None = None, registered: tuple[str, str, str] | None = None) -> Report:
    if len(data) > MAX_RECORD_BYTES:
        raise Problem(Kind.TOO_LARGE, "verify.jws_too_large", f"JWS records are limited to {MAX_RECORD_BYTES} bytes")
    try:
        protected_b64, payload_b64, sig_b64, unprotected = _jws_parts(data, detached)
        header = json.loads(b64u_decode(protected_b64))
        sig = b64u_decode(sig_b64)
        if payload_b64 is not None:
            b64u_decode(payload_b64)
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
    except Problem:
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: JSON nested too deep
        raise Problem(Kind.INVALID_INPUT, "verify.jws_malformed", f"not a readable JWS: {str(exc)[:120]}") from None
    alg = header.get("alg")
    if alg is None or str(alg).lower() == "none":
        raise Problem(Kind.INVALID_INPUT, "verify.jws_unsigned", "the JWS is unsigned (alg none): nothing to verify")
    if not isinstance(alg, str) or alg not in JWS_ALGS:
        raise Problem(Kind.INVALID_INPUT, "verify.jws_bad_alg", f"unsupported JWS algorithm {str(alg)[:40]!r}")
    crits = header.get("crit", []) or []
    if not isinstance(crits, list):  # RFC 7515 §4.1.11: an array of header names
        raise Problem(Kind.INVALID_INPUT, "verify.jws_malformed", "the crit header is not an array")
    for crit in crits:
        if crit != "sigT":
            raise Problem(Kind.INVALID_INPUT, "verify.jws_unknown_crit", f"unsupported critical header {crit!r}")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c:
        raise Problem(Kind.INVALID_INPUT, "verify.jws_no_certificate", "the JWS carries no x5c certificate chain")
    try:
        certs = [asn1_x509.Certificate.load(base64.b64decode(c, validate=True)) for c in x5c]
        for cert in certs:
            cert.native  # asn1crypto parses lazily: a broken x5c entry fails here (400), not in path building (500)
        leaf = x509.load_der_x509_certificate(certs[0].dump())
        public_key = leaf.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise Problem(Kind.INVALID_INPUT, "verify.jws_bad_certificate", f"the x5c certificate cannot be read: {str(exc)[:120]}") from None
    signing_input = f"{protected_b64}.{payload_b64}".encode("ascii")
    valid = _verify_raw(public_key, alg, signing_input, sig)
    thumb_ok = header.get("x5t#S256") in (None, b64u(hashlib.sha256(certs[0].dump()).digest()))
    ts = None
    tokens = _sig_tst_tokens(unprotected)
    report = asyncio.run(
        _crypto_report(
            sig_id="jws",
            fmt="JAdES",
            cert=certs[0],
            others=certs[1:],
            setup=setup,
            intact=thumb_ok,
            valid=valid,
            claimed=_parse_time(header.get("sigT")),
            ts_token=tokens[0] if tokens else None,
            ts_imprint=lambda algo: hashlib.new(algo, sig_b64.encode("ascii")).digest(),
            digest_algorithm=JWS_ALGS[alg][0],
            signature_algorithm=alg,
        )
    )
    del ts
    return _document_report("jws", data, (report,), setup, name=name, registered=registered)


def _sig_tst_tokens(unprotected: dict[str, Any]) -> list[cms.ContentInfo]:
    out: list[cms.ContentInfo] = []
    items = unprotected.get("etsiU", []) or []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            try:
                item = json.loads(b64u_decode(item))
            except ValueError:
                continue
        if not isinstance(item, dict):
            continue
        sig_tst = item.get("sigTst") or {}
        tokens = (sig_tst.get("tstTokens", []) or []) if isinstance(sig_tst, dict) else []
        for tok in tokens if isinstance(tokens, list) else []:
            try:
                out.append(cms.ContentInfo.load(base64.b64decode(tok["val"], validate=True)))
            except (ValueError, KeyError, TypeError):
                continue
    return out


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


async def _crypto_report(
    *,
    sig_id: str,
    fmt: str,
    cert: asn1_x509.Certificate,
    others: list[asn1_x509.Certificate],
    setup: TrustSetup,
    intact: bool,
    valid: bool,
    claimed: datetime | None,
    ts_token: cms.ContentInfo | None,
    ts_imprint: Any,
    digest_algorithm: str,
    signature_algorithm: str,
) -> SignatureReport:
    """Chain, timestamp and revocation checks shared by JWS records (CMS goes through pyHanko's
    own CMS validation, which does the same)."""
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko.sign.validation.status import TimestampSignatureStatus
    from pyhanko_certvalidator import CertificateValidator
    from pyhanko_certvalidator import errors as cv_errors

    timestamps: list[Timestamp] = []
    ts_time = None
    ts_ok = True
    if ts_token is not None:
        try:
            kwargs = await validate_tst_signed_data(ts_token["content"], _validation_context(setup, moment=None, extra_certs=others), ts_imprint)
            # the kwargs carry no "trusted": that is a property of the status they build
            tst_status = TimestampSignatureStatus(**kwargs)
            ts_ok = bool(tst_status.intact and tst_status.valid and tst_status.trusted)
            ts_time = tst_status.timestamp
            timestamps.append(Timestamp(ts_time.isoformat() if ts_time else "", tst_status.signing_cert.subject.human_friendly, bool(tst_status.intact and tst_status.valid), bool(tst_status.trusted), "signature"))
        except Exception:  # noqa: BLE001 - a broken token is an invalid timestamp, reported
            ts_ok = False
            timestamps.append(Timestamp("", "?", False, False, "signature"))
    vc = _validation_context(setup, moment=ts_time if ts_ok else None, extra_certs=others)
    trusted = False
    sub = None
    chain: tuple[Any, ...] = (cert_info(cert, setup.anchors),)
    try:
        path = await CertificateValidator(cert, intermediate_certs=others, validation_context=vc).async_validate_usage({"digital_signature"})
        trusted = True
        chain = tuple(cert_info(c, setup.anchors) for c in path.iter_certs(include_root=True))
    except cv_errors.RevokedError:
        sub = SubIndication.REVOKED
    except cv_errors.ExpiredError:
        sub = SubIndication.OUT_OF_BOUNDS_NO_POE
    except cv_errors.NotYetValidError:
        sub = SubIndication.NOT_YET_VALID
    except cv_errors.PathBuildingError:
        sub = SubIndication.NO_CERTIFICATE_CHAIN_FOUND
    except cv_errors.InvalidCertificateError:
        sub = SubIndication.CHAIN_CONSTRAINTS_FAILURE
    except Exception:  # noqa: BLE001
        sub = SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE
    revocation = setup.register(cert) or Revocation("unknown", "none")
    reasons: tuple[str, ...] = ()
    warnings: list[str] = []
    if not intact:
        indication, sub, reasons = Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE, ("content_mismatch",)
    elif not valid:
        indication, sub, reasons = Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE, ("signature_value_invalid",)
    elif revocation.status in ("revoked", "on_hold"):
        revoked_at = datetime.fromisoformat(revocation.revoked_at) if revocation.revoked_at else None
        if ts_time is not None and ts_ok and revoked_at is not None and ts_time < revoked_at and trusted:
            indication, sub = Indication.TOTAL_PASSED, None
            warnings.append("certificate_revoked_after_signing_time")
        elif ts_time is not None and ts_ok:
            indication, sub, reasons = Indication.TOTAL_FAILED, SubIndication.REVOKED, ("certificate_revoked_before_signing",)
        else:
            indication, sub, reasons = Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE, ("certificate_revoked_no_proof_of_time",)
    elif sub is SubIndication.REVOKED:
        indication, reasons = Indication.TOTAL_FAILED, ("certificate_revoked",)
    elif sub is not None:
        indication, reasons = Indication.INDETERMINATE, ("chain_or_time_problem",)
    elif not ts_ok:
        indication, sub, reasons = Indication.INDETERMINATE, SubIndication.GENERIC, ("signature_timestamp_invalid",)
    elif revocation.status == "unknown":
        indication, sub, reasons = Indication.INDETERMINATE, SubIndication.TRY_LATER, ("no_revocation_information",)
    else:
        indication, sub = Indication.TOTAL_PASSED, None
    level = "B-T" if ts_token is not None and ts_ok else "B-B"
    return SignatureReport(
        id=sig_id,
        format=fmt,
        indication=indication,
        sub_indication=sub,
        signer=signer_of(cert, setup),
        signing_time=(ts_time.isoformat() if ts_time and ts_ok else (claimed.isoformat() if claimed else None)),
        signing_time_source="timestamp" if ts_time and ts_ok else ("claimed" if claimed else "none"),
        level=level,
        chain=chain,
        revocation=revocation,
        coverage=None,
        timestamps=tuple(timestamps),
        intact=intact,
        crypto_valid=valid,
        trusted=trusted,
        digest_algorithm=digest_algorithm,
        signature_algorithm=signature_algorithm,
        reasons=reasons,
        warnings=tuple(warnings),
    )


def _document_report(kind: str, data: bytes, sigs: tuple[SignatureReport, ...], setup: TrustSetup, *, name: str | None, registered: tuple[str, str, str] | None) -> Report:
    indication, sub = overall(sigs)
    return Report(
        document=DocumentInfo(
            kind=kind,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            name=name,
            registered_id=registered[0] if registered else None,
            registered_seal=registered[1] if registered else None,
            registered_at=registered[2] if registered else None,
        ),
        indication=indication,
        sub_indication=sub,
        signatures=sigs,
        validated_at=clock.now().isoformat(),
        policy=POLICY,
        trust_anchors=setup.anchor_names,
    )


# -- CMS ---------------------------------------------------------------------------------------------


def seal_cms(signer: Any, payload: bytes, *, timestamper: Any = None) -> bytes:
    """Detached CAdES signature (DER ContentInfo) over ``payload``."""
    signed = asyncio.run(signer.async_sign_general_data(payload, "sha256", detached=True, use_cades=True, timestamper=timestamper))
    return signed.dump()


def _load_cms(data: bytes) -> cms.ContentInfo:
    raw = data
    if data.lstrip().startswith(b"-----BEGIN"):
        from asn1crypto import pem

        try:
            _, _, raw = pem.unarmor(data.strip())
        except ValueError as exc:
            raise Problem(Kind.INVALID_INPUT, "verify.cms_malformed", f"bad PEM: {exc}") from None
    try:
        info = cms.ContentInfo.load(raw, strict=True)
        if info["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        sd = info["content"]
        sd["signer_infos"][0]["signed_attrs"].native
        info.native  # asn1crypto parses lazily: force the whole structure now, so a broken part is a 400 here, not a 500 later
        return info
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        # AttributeError: asn1crypto building .native of a mistagged child (a REAL where BasicConstraints
        # expects a BOOLEAN: "'Real' object has no attribute 'native'", found by hypothesis)
        raise Problem(Kind.INVALID_INPUT, "verify.cms_malformed", f"not a readable CMS SignedData: {str(exc)[:120]}") from None


def verify_cms(data: bytes, setup: TrustSetup, *, detached: bytes | None = None, name: str | None = None, registered: tuple[str, str, str] | None = None) -> Report:
    from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
    from pyhanko.sign.validation.settings import KeyUsageConstraints

    info = _load_cms(data)
    sd = info["content"]
    content = sd["encap_content_info"]["content"]
    if detached is None and content.native is None:
        raise Problem(Kind.INVALID_INPUT, "verify.cms_content_missing", "the CMS signature is detached: send the signed data as well")
    payload = detached if detached is not None else content.native
    claimed = None
    ts_time = None
    try:
        from pyhanko.sign.validation.generic_cms import extract_self_reported_ts

        claimed = extract_self_reported_ts(sd["signer_infos"][0])
    except Exception:  # noqa: BLE001
        claimed = None
    from signing.verify import tst_time

    ts_time = tst_time(sd)
    extra = list(sd["certificates"] or [])
    extra_certs = [c.chosen for c in extra if c.name == "certificate"]
    vc = _validation_context(setup, moment=ts_time, extra_certs=extra_certs)
    ts_vc = _validation_context(setup, moment=None, extra_certs=extra_certs)
    try:
        status = asyncio.run(
            async_validate_detached_cms(
                payload,
                sd,
                signer_validation_context=vc,
                ts_validation_context=ts_vc,
                key_usage_settings=KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False),
            )
        )
    except Exception as exc:  # noqa: BLE001 - unreadable or unsupported signature: a failed report
        sig = SignatureReport.unreadable("cms", "CAdES", exc)
        return _document_report("cms", data, (sig,), setup, name=name, registered=registered)
    cert = status.signing_cert
    tsv = status.timestamp_validity
    ts_ok = tsv is None or (tsv.intact and tsv.valid and tsv.trusted)
    revocation = setup.register(cert) or Revocation("unknown", "none")
    timestamps = (Timestamp(tsv.timestamp.isoformat(), tsv.signing_cert.subject.human_friendly, tsv.intact and tsv.valid, tsv.trusted, "signature"),) if tsv else ()
    warnings: list[str] = []
    reasons: tuple[str, ...] = ()
    sub = None
    if not status.intact:
        indication, sub, reasons = Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE, ("content_digest_mismatch",)
    elif not status.valid:
        indication, sub, reasons = Indication.TOTAL_FAILED, SubIndication.SIG_CRYPTO_FAILURE, ("signature_value_invalid",)
    elif revocation.status in ("revoked", "on_hold"):
        revoked_at = datetime.fromisoformat(revocation.revoked_at) if revocation.revoked_at else None
        if tsv is not None and ts_ok and revoked_at is not None and tsv.timestamp < revoked_at and status.trusted:
            indication = Indication.TOTAL_PASSED
            warnings.append("certificate_revoked_after_signing_time")
        elif tsv is not None and ts_ok:
            indication, sub, reasons = Indication.TOTAL_FAILED, SubIndication.REVOKED, ("certificate_revoked_before_signing",)
        else:
            indication, sub, reasons = Indication.INDETERMINATE, SubIndication.REVOKED_NO_POE, ("certificate_revoked_no_proof_of_time",)
    elif status.trust_problem_indic is not None:
        from signing.verify import _sub

        sub = _sub(status.trust_problem_indic)
        indication = Indication.TOTAL_FAILED if sub is SubIndication.REVOKED else Indication.INDETERMINATE
        reasons = ("chain_or_time_problem",)
    elif not status.trusted:
        indication, sub, reasons = Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND, ("untrusted_chain",)
    elif not ts_ok:
        indication, sub, reasons = Indication.INDETERMINATE, SubIndication.GENERIC, ("signature_timestamp_invalid",)
    elif revocation.status == "unknown":
        indication, sub, reasons = Indication.INDETERMINATE, SubIndication.TRY_LATER, ("no_revocation_information",)
    else:
        indication = Indication.TOTAL_PASSED
    chain = tuple(cert_info(c, setup.anchors) for c in status.validation_path.iter_certs(include_root=True)) if status.validation_path else (cert_info(cert, setup.anchors),)
    use_ts = tsv is not None and ts_ok
    sig = SignatureReport(
        id="cms",
        format="CAdES",
        indication=indication,
        sub_indication=sub,
        signer=signer_of(cert, setup),
        signing_time=(tsv.timestamp.isoformat() if use_ts else (claimed.isoformat() if claimed else None)),
        signing_time_source="timestamp" if use_ts else ("claimed" if claimed else "none"),
        level="B-T" if use_ts else "B-B",
        chain=chain,
        revocation=revocation,
        coverage=None,
        timestamps=timestamps,
        intact=status.intact,
        crypto_valid=status.valid,
        trusted=status.trusted,
        digest_algorithm=status.md_algorithm,
        signature_algorithm=status.pkcs7_signature_mechanism,
        reasons=reasons,
        warnings=tuple(warnings),
    )
    return _document_report("cms", data, (sig,), setup, name=name, registered=registered)
