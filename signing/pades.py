"""PAdES sealing (ETSI EN 319 142-1) with pyHanko.

Levels (§5 of EN 319 142-1, baseline signatures):

- **B-B**: CAdES-detached CMS (``/SubFilter /ETSI.CAdES.detached``), ``signingCertificateV2``.
- **B-T**: plus a signature timestamp from our TSA (in-process).
- **B-LT**: plus the certificates and OCSP responses / CRLs for the seal and TSA chains in the DSS.
- **B-LTA**: plus a document timestamp over everything (re-timestamping keeps the evidence alive).

Approval signatures by default; ``certify`` makes it a certification signature with DocMDP
permissions (ISO 32000-1 §12.8.2.2). A document may carry several seals: each one is an
incremental update, so earlier signatures stay intact.

Appearance: see :mod:`signing.appearance`. Placement: a page and a box (PDF points, lower-left
origin), or an existing empty signature field by name.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from core.errors import Kind, Problem

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
DEFAULT_LEVEL = "B-LT"
CHINA_TIME = timezone(timedelta(hours=8), "CST")
DEFAULT_BOX_SIZE = (220.0, 84.0)
MARGIN = 36.0


@dataclass(frozen=True)
class Placement:
    """Where the visible seal goes. ``field``: an existing empty signature field (wins over
    page/box). ``box``: (x1, y1, x2, y2) in points; default bottom-right of the page."""

    page: int = -1
    box: tuple[float, float, float, float] | None = None
    field: str | None = None
    visible: bool = True

    def __post_init__(self) -> None:
        if self.box is not None:
            x1, y1, x2, y2 = self.box
            if not (x2 - x1 >= 40 and y2 - y1 >= 20):
                raise Problem(Kind.VALIDATION, "signing.bad_box", "the seal box must be at least 40×20 points (x1,y1,x2,y2)", fields=[{"name": "box", "reason": "too small or inverted"}])
        if self.field is not None and not (0 < len(self.field) <= 100):
            raise Problem(Kind.VALIDATION, "signing.bad_field", "field names are 1–100 characters", fields=[{"name": "field", "reason": "length"}])


@dataclass(frozen=True)
class PadesOptions:
    level: str = DEFAULT_LEVEL
    certify: bool = False
    docmdp: int = 2  # 1 no changes, 2 form filling + signing, 3 plus annotations
    placement: Placement = Placement()
    reason: str | None = None
    location: str | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise Problem(Kind.VALIDATION, "signing.bad_level", f"level must be one of {', '.join(LEVELS)}", fields=[{"name": "level", "reason": "unknown level"}])
        if self.docmdp not in (1, 2, 3):
            raise Problem(Kind.VALIDATION, "signing.bad_docmdp", "DocMDP permissions are 1, 2 or 3", fields=[{"name": "docmdp", "reason": "out of range"}])


# Licences and approvals are a few pages; the bound keeps page-tree walks (placement, appearance)
# and the work a hostile upload can ask for small. A declared /Count counts, true or not.
MAX_PAGES = 2000


def open_pdf(data: bytes, *, max_bytes: int) -> Any:
    """An ``IncrementalPdfFileWriter`` over ``data``, or a 4xx problem naming what is wrong."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError

    if len(data) > max_bytes:
        raise Problem(Kind.TOO_LARGE, "signing.too_large", f"documents are limited to {max_bytes} bytes")
    if not data.lstrip(b"\r\n\t \x00")[:5] == b"%PDF-" and b"%PDF-" not in data[:1024]:
        raise Problem(Kind.UNSUPPORTED_MEDIA_TYPE, "signing.not_pdf", "the document is not a PDF")
    if b"%%EOF" not in data[-2048:]:
        raise Problem(Kind.INVALID_INPUT, "signing.pdf_truncated", "the PDF is truncated (no %%EOF marker at the end)")
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError, OSError) as exc:
        raise Problem(Kind.INVALID_INPUT, "signing.pdf_unreadable", f"the PDF cannot be read: {_short(exc)}") from None
    if writer.prev.encrypted:
        raise Problem(Kind.INVALID_INPUT, "signing.pdf_encrypted", "encrypted PDFs cannot be sealed; remove the password first")
    try:
        writer.root["/Pages"]
        pages = _page_count(writer)
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        raise Problem(Kind.INVALID_INPUT, "signing.pdf_unreadable", f"the PDF page tree cannot be read: {_short(exc)}") from None
    if pages > MAX_PAGES:
        raise Problem(Kind.TOO_LARGE, "signing.too_many_pages", f"documents are limited to {MAX_PAGES} pages (this one declares {pages})")
    return writer


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def _page_count(writer: Any) -> int:
    return int(writer.root["/Pages"]["/Count"])


def _default_box(writer: Any, page: int) -> tuple[float, float, float, float]:
    """Bottom-right corner of the page, inside a margin."""
    media = _media_box(writer, page)
    try:
        x1, y1, x2, _y2 = (float(v) for v in media)
    except (TypeError, ValueError):
        x1, y1, x2 = 0.0, 0.0, 595.0  # A4 when the page has no usable /MediaBox
    w, h = DEFAULT_BOX_SIZE
    return (x2 - MARGIN - w, y1 + MARGIN, x2 - MARGIN, y1 + MARGIN + h)


def _media_box(writer: Any, page: int) -> Any:
    """The page's /MediaBox, inherited through the page tree if need be (ISO 32000-1 §7.7.3.4)."""
    node = _page_dict(writer, page)
    while node is not None:
        if "/MediaBox" in node:
            return node["/MediaBox"]
        parent = node.get("/Parent")
        node = parent.get_object() if parent is not None else None
    return None


def _page_dict(writer: Any, page: int) -> Any:
    count = _page_count(writer)
    index = page if page >= 0 else count + page
    if not 0 <= index < count:
        raise Problem(Kind.VALIDATION, "signing.bad_page", f"the document has {count} page(s); page {page} does not exist", fields=[{"name": "page", "reason": "out of range"}])
    return _walk_pages(writer.root["/Pages"], index)


def _walk_pages(node: Any, index: int) -> Any:
    node = node.get_object()
    for kid in node["/Kids"]:
        kid = kid.get_object()
        if kid.get("/Type") == "/Pages":
            count = int(kid["/Count"])
            if index < count:
                return _walk_pages(kid, index)
            index -= count
        else:
            if index == 0:
                return kid
            index -= 1
    raise Problem(Kind.INVALID_INPUT, "signing.pdf_unreadable", "the page tree is inconsistent")


def check_existing_field(writer: Any, name: str) -> None:
    from pyhanko.sign.fields import enumerate_sig_fields

    found = list(enumerate_sig_fields(writer.prev, with_name=name))
    if not found:
        raise Problem(Kind.NOT_FOUND, "signing.field_not_found", f"the document has no signature field {name!r}")
    _, value, _ = found[0]
    if value is not None:
        raise Problem(Kind.CONFLICT, "signing.field_filled", f"signature field {name!r} is already signed")


def seal_pdf_bytes(
    data: bytes,
    *,
    signer: Any,
    field_name: str,
    options: PadesOptions,
    signing_time: datetime,
    verify_url: str,
    department: str,
    stamp_style: Any | None,
    timestamper: Any | None,
    validation_context: Any | None,
    bytes_reserved: int,
    max_bytes: int,
) -> bytes:
    """Seal one PDF. ``signer``: an :class:`signing.signer.HsmSigner`; ``timestamper``: required
    from B-T up; ``validation_context``: required from B-LT up (revocation info pre-fetched)."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign import fields, signers
    from pyhanko.sign.general import SigningError

    writer = open_pdf(data, max_bytes=max_bytes)
    placement = options.placement
    existing = placement.field is not None
    if existing:
        with _unreadable_as_problem():
            check_existing_field(writer, placement.field)  # type: ignore[arg-type]
        field_name = placement.field  # type: ignore[assignment]
    if options.level != "B-B" and timestamper is None:
        raise Problem(Kind.UNAVAILABLE, "signing.tsa_unavailable", "the timestamp authority is not configured")
    lt = options.level in ("B-LT", "B-LTA")
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=options.certify,
        docmdp_permissions=fields.MDPPerm(options.docmdp),
        embed_validation_info=lt,
        use_pades_lta=options.level == "B-LTA",
        validation_context=validation_context if lt else None,
        reason=options.reason,
        location=options.location,
        name=department,
    )
    new_field = None
    if not existing:
        box = None
        with _unreadable_as_problem():  # pages are read lazily: a broken page object surfaces here
            if placement.visible:
                box = placement.box or _default_box(writer, placement.page)
            else:
                _page_dict(writer, placement.page)
        new_field = fields.SigFieldSpec(sig_field_name=field_name, on_page=placement.page, box=box)
    pdf_signer = signers.PdfSigner(
        meta,
        signer=signer,
        timestamper=timestamper if options.level != "B-B" else None,
        stamp_style=stamp_style,
        new_field_spec=new_field,
    )
    text_params = {
        "url": verify_url,
        "department": department,
        "signed_at": signing_time.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S") + " (UTC+8)",
    }
    try:
        out = pdf_signer.sign_pdf(writer, existing_fields_only=existing, bytes_reserved=bytes_reserved, appearance_text_params=text_params)
    except SigningError as exc:
        message = _short(exc)
        lowered = message.lower()
        if any(word in lowered for word in ("certif", "docmdp", "lock", "author signature", "forbids")):
            raise Problem(Kind.CONFLICT, "signing.document_locked", f"the document does not allow this signature: {message}") from None
        raise Problem(Kind.POLICY, "signing.refused", f"pyHanko refused to sign: {message}") from None
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        raise Problem(Kind.INVALID_INPUT, "signing.pdf_unreadable", f"the PDF could not be updated: {_short(exc)}") from None
    return out.getvalue()


@contextlib.contextmanager
def _unreadable_as_problem() -> Iterator[None]:
    """A PDF object that cannot be read (pyHanko reads objects lazily, long after ``open_pdf``) is
    the uploader's 400, not a 500."""
    from pyhanko.pdf_utils.misc import PdfError

    try:
        yield
    except Problem:
        raise
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as exc:
        raise Problem(Kind.INVALID_INPUT, "signing.pdf_unreadable", f"the PDF cannot be read: {_short(exc)}") from None
