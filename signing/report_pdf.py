"""The verification report as a PDF (A4, Simplified Chinese or English), for filing or printing.

Rendered from the same :class:`signing.report.Report` as the JSON and the HTML page: the verdict,
the document and, per signature, signer, time and its source, level, indication, coverage and
revocation. Text is real PDF text in an embedded subset of Noto Sans CJK (the seal appearance's
font code), so it can be searched and copied. The report itself is not signed: it describes a check
anyone can repeat on the same file.
"""

from __future__ import annotations

import io

from signing import i18n
from signing.report import Report

PAGE_W, PAGE_H = 595, 842
MARGIN = 50
FONT_SIZE = 10
LEADING = 15
LINES_PER_PAGE = (PAGE_H - 2 * MARGIN) // LEADING
WRAP = 58  # characters per line (CJK glyphs are about twice as wide as Latin ones)


def _wrap(text: str, width: int = WRAP) -> list[str]:
    out, line, size = [], "", 0
    for ch in text:
        w = 2 if ord(ch) > 0x2E80 else 1
        if size + w > 2 * width:
            out.append(line)
            line, size = "    ", 4
        line += ch
        size += w
    out.append(line)
    return out


def report_lines(report: Report, lang: str) -> list[str]:
    t = lambda key, **kw: i18n.t(lang, key, **kw)  # noqa: E731
    doc = report.document
    lines = [
        t("report.title") + " · " + t("site.name"),
        "",
        f"{t('verdict.' + report.colour)} ({report.indication.value}{' / ' + report.sub_indication.value if report.sub_indication else ''})",
        t(f"verdict.{report.colour}.text"),
        "",
    ]
    if doc.name:
        lines.append(f"{t('report.file')}: {doc.name}")
    lines += [
        f"{t('report.kind')}: {doc.kind.upper()}    {t('report.size')}: {t('report.bytes', n=doc.size)}",
        f"{t('report.sha256')}: {doc.sha256}",
        f"{t('report.validated_at')}: {i18n.when(report.validated_at)}",
    ]
    if doc.registered_id:
        lines.append(t("report.registered", id=doc.registered_id, seal=doc.registered_seal, at=i18n.when(doc.registered_at)))
    lines += ["", t("report.signatures", n=len(report.signatures))]
    if not report.signatures:
        lines.append(t("report.none"))
    for i, sig in enumerate(report.signatures, 1):
        sub = f" / {sig.sub_indication.value} — {t('sub.' + sig.sub_indication.value)}" if sig.sub_indication else ""
        lines += [
            "",
            f"{i}. {sig.signer.organisation or sig.signer.name}  [{sig.format} · {sig.id}]",
            f"   {t('sig.indication')}: {sig.indication.value}{sub}",
            f"   {t('sig.signer')}: {sig.signer.name}" + (f" · {sig.signer.organisation}" if sig.signer.organisation else ""),
        ]
        if sig.signer.uscc:
            lines.append(f"   {t('sig.uscc')}: {sig.signer.uscc}")
        when = i18n.when(sig.signing_time) or t("sig.time.none")
        lines.append(f"   {t('sig.time')}: {when} {t('sig.time.' + sig.signing_time_source) if sig.signing_time else ''}")
        if sig.level:
            lines.append(f"   {t('sig.level')}: {sig.level}")
        if sig.coverage is not None:
            scope = t("sig.whole") if sig.coverage.whole_document else t("sig.partial", rev=(sig.coverage.covered_revision or 0) + 1, total=sig.coverage.total_revisions)
            lines.append(f"   {t('sig.coverage')}: {scope}; {t('mod.' + sig.coverage.modifications)}")
        lines.append(f"   {t('sig.revocation')}: {t('rev.' + sig.revocation.status)} ({sig.revocation.source})")
        for c in sig.chain:
            lines.append(f"   {t('sig.chain')}: {c.subject} [{c.serial}]")
        if sig.reasons:
            lines.append(f"   {t('sig.reasons')}: {', '.join(sig.reasons)}")
        if sig.warnings:
            lines.append(f"   {t('sig.warnings')}: {', '.join(sig.warnings)}")
    lines += ["", f"{t('report.policy')}: {report.policy}"]
    return [w for line in lines for w in (_wrap(line) if line else [""])]


def render(report: Report, *, lang: str = i18n.DEFAULT) -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.content import RawContent
    from pyhanko.pdf_utils.layout import BoxConstraints
    from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
    from pyhanko.pdf_utils.writer import PdfFileWriter

    from signing.appearance import _font_factory, subset_font

    lines = report_lines(report, lang)
    font = subset_font("".join(lines))
    writer = PdfFileWriter()
    style = TextBoxStyle(font=_font_factory(font, FONT_SIZE), font_size=FONT_SIZE, leading=LEADING, border_width=0)
    pages = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[""]]
    for chunk in pages:
        box = TextBox(style, writer=writer, box=BoxConstraints(width=PAGE_W - 2 * MARGIN, height=PAGE_H - 2 * MARGIN))
        box.content = "\n".join(line or " " for line in chunk)
        commands = box.render()
        content = RawContent(f"q 1 0 0 1 {MARGIN} {MARGIN} cm ".encode() + commands + b" Q", resources=box.resources, box=BoxConstraints(PAGE_W, PAGE_H))
        content.set_writer(writer)
        stream = generic.StreamObject(stream_data=content.render())
        stream.compress()
        page = generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Page"),
                generic.pdf_name("/MediaBox"): generic.ArrayObject([generic.NumberObject(0), generic.NumberObject(0), generic.NumberObject(PAGE_W), generic.NumberObject(PAGE_H)]),
                generic.pdf_name("/Resources"): content.resources.as_pdf_object(),
                generic.pdf_name("/Contents"): writer.add_object(stream),
            }
        )
        writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
