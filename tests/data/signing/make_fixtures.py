"""Regenerates the PDF fixtures of this directory: `.venv/bin/python tests/data/signing/make_fixtures.py`.

- licence.pdf: a one-page A4 "electronic business licence" with Chinese text in an embedded Noto Sans
  CJK subset (the document the sealing benchmark and tests use).
- with_field.pdf: licence.pdf plus an empty signature field "DeptSeal" (placement by field name).
- encrypted.pdf: licence.pdf encrypted with the user password "secret" (AES-256, pyHanko).
- broken_xref.pdf: licence.pdf with its cross-reference offsets overwritten by garbage.
- not_a_pdf.pdf: a PNG renamed .pdf.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))


def licence_pdf() -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.content import RawContent
    from pyhanko.pdf_utils.layout import BoxConstraints
    from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
    from pyhanko.pdf_utils.writer import PdfFileWriter

    from signing.appearance import _font_factory, subset_font

    text = (
        "营业执照（电子版）\n\n"
        "统一社会信用代码：91460100MA5T000001\n"
        "名称：海口市示范科技有限公司\n"
        "类型：有限责任公司\n"
        "法定代表人：张三\n"
        "经营范围：软件开发；信息技术咨询服务\n"
        "注册资本：壹佰万元整\n"
        "成立日期：2024年01月01日\n"
        "住所：海南省海口市美兰区示范路1号\n\n"
        "登记机关：海口市市场监督管理局\n"
        "Electronic business licence - test fixture"
    )
    font = subset_font(text)
    writer = PdfFileWriter()
    style = TextBoxStyle(font=_font_factory(font, 14), leading=24, border_width=0)
    box = TextBox(style, writer=writer, box=BoxConstraints(width=480, height=600))
    box.content = text
    commands = box.render()
    content = RawContent(b"q 1 0 0 1 60 150 cm " + commands + b" Q", resources=box.resources, box=BoxConstraints(595, 842))
    content.set_writer(writer)
    stream = generic.StreamObject(stream_data=content.render())
    stream.compress()
    page = generic.DictionaryObject(
        {
            generic.pdf_name("/Type"): generic.pdf_name("/Page"),
            generic.pdf_name("/MediaBox"): generic.ArrayObject([generic.NumberObject(0), generic.NumberObject(0), generic.NumberObject(595), generic.NumberObject(842)]),
            generic.pdf_name("/Resources"): content.resources.as_pdf_object(),
            generic.pdf_name("/Contents"): writer.add_object(stream),
        }
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def with_field(data: bytes) -> bytes:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields

    w = IncrementalPdfFileWriter(io.BytesIO(data))
    fields.append_signature_field(w, fields.SigFieldSpec("DeptSeal", on_page=0, box=(60, 60, 300, 150)))
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def encrypted(data: bytes) -> bytes:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    w = copy_into_new_writer(PdfFileReader(io.BytesIO(data)))
    w.encrypt(b"owner", b"secret")  # PDF 2.0 AES-256
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def broken_xref(data: bytes) -> bytes:
    start = data.rindex(b"startxref")
    offset = int(data[start + 9:].split()[0])
    # point startxref into the middle of the page content
    return data[:start] + b"startxref\n" + str(offset // 3).encode() + b"\n%%EOF\n"


def main() -> None:
    lic = licence_pdf()
    (HERE / "licence.pdf").write_bytes(lic)
    (HERE / "with_field.pdf").write_bytes(with_field(lic))
    (HERE / "encrypted.pdf").write_bytes(encrypted(lic))
    (HERE / "broken_xref.pdf").write_bytes(broken_xref(lic))
    from signing.appearance import default_seal_png

    (HERE / "not_a_pdf.pdf").write_bytes(default_seal_png("测试", "测试"))
    print("fixtures written to", HERE)


if __name__ == "__main__":
    main()
