"""Texts of the public verification page: Simplified Chinese (default) and English, and the
Jinja2 environment that renders ``signing/templates`` (autoescaped; no inline script or style, so
the platform's CSP holds)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

LANGS = ("zh-CN", "en")
DEFAULT = "zh-CN"

MESSAGES: dict[str, tuple[str, str]] = {
    "site.name": ("电子印章验证", "Electronic seal verification"),
    "site.platform": ("统一电子认证平台", "Unified electronic authentication platform"),
    "site.switch": ("English", "简体中文"),
    "site.footer": ("验证在本平台完成，文件不会被保存。本页面不使用任何第三方资源。", "Verification happens on this platform; files are not kept. This page loads no third-party resources."),
    "form.title": ("验证电子文件", "Verify an electronic document"),
    "form.intro": (
        "上传加盖电子印章的 PDF 文件（或 JWS / CMS 签名数据），检查文件是否完整、印章是否有效。",
        "Upload a PDF carrying an electronic seal (or a JWS / CMS signed record) to check that it is intact and the seal is valid.",
    ),
    "form.file": ("选择文件", "Choose a file"),
    "form.submit": ("开始验证", "Verify"),
    "form.submit_pdf": ("验证并下载 PDF 报告", "Verify and download a PDF report"),
    "form.limit": ("文件大小上限：{mb} MB", "Size limit: {mb} MB"),
    "form.error": ("无法验证：{detail}", "Cannot verify: {detail}"),
    "doc.title": ("扫码验证", "Verification code"),
    "doc.intro": ("该编号对应的文件由本平台加盖电子印章：", "The document with this code was sealed on this platform:"),
    "doc.id": ("文件编号", "Document code"),
    "doc.seal": ("印章", "Seal"),
    "doc.department": ("盖章单位", "Sealed by"),
    "doc.sealed_at": ("盖章时间", "Sealed at"),
    "doc.level": ("签名级别", "Signature level"),
    "doc.sha256": ("文件指纹（SHA-256）", "Fingerprint (SHA-256)"),
    "doc.check": ("请上传您手中的文件，核对它是否就是这份文件、是否未被改动。", "Upload your copy to check it is this document and has not been changed."),
    "verdict.green": ("验证通过", "Valid"),
    "verdict.amber": ("无法完全确认", "Could not be fully confirmed"),
    "verdict.red": ("验证失败", "Not valid"),
    "verdict.green.text": ("文件自盖章后未被改动，印章有效，由本平台信任的机构签发。", "The document has not changed since it was sealed, and the seal is valid and issued by an authority this platform trusts."),
    "verdict.amber.text": ("文件的印章无法完全确认（例如证书链或状态信息不全），请谨慎对待，必要时联系盖章单位。", "The seal could not be fully confirmed (for example the certificate chain or status is incomplete). Treat it with care and ask the sealing department if in doubt."),
    "verdict.red.text": ("文件在盖章后被改动，或印章无效。请不要信任此文件。", "The document was changed after sealing, or the seal is not valid. Do not rely on this document."),
    "report.title": ("验证报告", "Verification report"),
    "report.file": ("文件", "File"),
    "report.kind": ("类型", "Type"),
    "report.size": ("大小", "Size"),
    "report.bytes": ("{n} 字节", "{n} bytes"),
    "report.sha256": ("文件指纹（SHA-256）", "Fingerprint (SHA-256)"),
    "report.registered": ("本平台登记的文件：编号 {id}，印章「{seal}」，{at}", "Registered on this platform: code {id}, seal “{seal}”, {at}"),
    "report.not_registered": ("该文件的指纹不在本平台的盖章登记中（例如之后又加盖了其他印章，或由其他系统盖章）。", "This file's fingerprint is not in this platform's register of sealed documents (for example another seal was added later, or it was sealed elsewhere)."),
    "report.mismatch": ("注意：上传的文件不是二维码所指的文件（编号 {id}）。", "Note: the uploaded file is not the document the QR code refers to (code {id})."),
    "report.match": ("上传的文件就是二维码所指的文件（编号 {id}）。", "The uploaded file is the document the QR code refers to (code {id})."),
    "report.signatures": ("签名（{n}）", "Signatures ({n})"),
    "report.none": ("文件中没有任何签名或印章。", "The document carries no signature or seal."),
    "report.validated_at": ("验证时间", "Validated at"),
    "report.policy": ("验证策略", "Validation policy"),
    "report.again": ("验证另一个文件", "Verify another document"),
    "report.json": ("下载 JSON 报告", "Download the JSON report"),
    "sig.signer": ("签章单位", "Signer"),
    "sig.seal": ("印章", "Seal"),
    "sig.uscc": ("统一社会信用代码", "Unified social credit code"),
    "sig.time": ("签章时间", "Signing time"),
    "sig.time.timestamp": ("（可信时间戳）", "(trusted timestamp)"),
    "sig.time.claimed": ("（签章方声明，未经时间戳证明）", "(claimed by the signer, not proved by a timestamp)"),
    "sig.time.none": ("未知", "unknown"),
    "sig.level": ("签名级别", "Level"),
    "sig.indication": ("结论", "Indication"),
    "sig.coverage": ("覆盖范围", "Coverage"),
    "sig.whole": ("覆盖整个文件", "covers the whole document"),
    "sig.partial": ("覆盖第 {rev} 版（共 {total} 版）", "covers revision {rev} of {total}"),
    "sig.revocation": ("证书状态", "Certificate status"),
    "sig.chain": ("证书链", "Certificate chain"),
    "sig.reasons": ("原因", "Reasons"),
    "sig.warnings": ("提示", "Notes"),
    "sig.timestamps": ("时间戳", "Timestamps"),
    "sig.kind.document": ("文档时间戳", "document timestamp"),
    "sig.kind.signature": ("签名时间戳", "signature timestamp"),
    "mod.none": ("盖章后无改动", "no change after sealing"),
    "mod.later-signatures": ("之后仅追加了其他印章", "only further seals added later"),
    "mod.dss-or-timestamps": ("之后仅追加了验证数据或时间戳", "only validation data or timestamps added later"),
    "mod.form-filling": ("盖章后表单内容被修改", "form fields changed after sealing"),
    "mod.annotations": ("盖章后添加了批注", "annotations added after sealing"),
    "mod.other": ("盖章后文件内容被修改", "content changed after sealing"),
    "rev.good": ("有效（未吊销）", "good (not revoked)"),
    "rev.revoked": ("已吊销", "revoked"),
    "rev.on_hold": ("已暂停", "suspended"),
    "rev.unknown": ("未知", "unknown"),
    "rev.not_checked": ("未检查", "not checked"),
    "ind.TOTAL-PASSED": ("通过", "TOTAL-PASSED"),
    "ind.INDETERMINATE": ("无法确定", "INDETERMINATE"),
    "ind.TOTAL-FAILED": ("失败", "TOTAL-FAILED"),
    "sub.HASH_FAILURE": ("文件内容与签名不符（文件已被篡改）", "the content does not match the signature (tampered)"),
    "sub.SIG_CRYPTO_FAILURE": ("签名值无效", "the signature value is invalid"),
    "sub.SIG_CONSTRAINTS_FAILURE": ("盖章后文件被改动", "the document was changed after sealing"),
    "sub.REVOKED": ("证书已被吊销", "the certificate is revoked"),
    "sub.REVOKED_NO_POE": ("证书已被吊销，且无法证明盖章早于吊销", "the certificate is revoked and there is no proof the seal predates it"),
    "sub.NO_CERTIFICATE_CHAIN_FOUND": ("证书不是由受信任的机构签发", "the certificate does not chain to a trusted authority"),
    "sub.TRY_LATER": ("暂时无法获得证书状态", "the certificate status is not available yet"),
    "sub.FORMAT_FAILURE": ("签名格式无法识别", "the signature cannot be read"),
    "sub.OUT_OF_BOUNDS_NO_POE": ("证书已过期", "the certificate has expired"),
    "sub.NOT_YET_VALID": ("证书尚未生效", "the certificate is not yet valid"),
    "sub.GENERIC": ("其他问题", "another problem"),
}


def pick(query: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins; otherwise Chinese unless the browser asks for English first."""
    if query:
        q = query.lower()
        return "en" if q.startswith("en") else DEFAULT
    return DEFAULT


def t(lang: str, key: str, **values: Any) -> str:
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "en" else pair[0]
    return text.format(**values) if values else text


def when(value: str | None) -> str:
    """An ISO 8601 time as a citizen reads it: Beijing time to the second."""
    from datetime import datetime, timedelta, timezone

    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S") + " (UTC+8)"


@functools.lru_cache(maxsize=1)
def environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(Path(__file__).resolve().parent / "templates")),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    return env


def render(template: str, *, lang: str, **context: Any) -> str:
    def _t(key: str, **values: Any) -> str:
        return t(lang, key, **values)

    other = "en" if lang != "en" else "zh-CN"
    return environment().get_template(template).render(t=_t, lang=lang, other_lang=other, html_lang="en" if lang == "en" else "zh-CN", **context)
