"""What a seal looks like: the default red round stamp, the CJK font subset, the pyHanko stamp style.

- **Stamp image.** A department may upload its own PNG; otherwise we draw the conventional red round
  seal (ring, five-pointed star, the department name along the upper arc, the seal name below the
  star) with Pillow and Noto Sans CJK.
- **Font.** The visible signature text (department name, signing time) is real PDF text in an
  embedded font (PDF 32000-1 §9.9), so it is searchable and crisp. Noto Sans CJK is a 20 MB
  collection: subsetting it per signature would cost most of the signing time, so a seal gets its
  own subset (its names, digits, ASCII and our labels, a few kB) once, at creation, stored with the
  seal; pyHanko then subsets that small font further per document.
- **Style.** A pyHanko ``QRStampStyle``: the stamp image as the background, the text box, and the
  QR code that opens the public verification page for this document.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import Kind, Problem

FONT_DIRS = (Path("/usr/share/fonts/opentype/noto"), Path("/usr/share/fonts/truetype/noto"))
FONT_FILE = "NotoSansCJK-Regular.ttc"
FONT_BOLD_FILE = "NotoSansCJK-Bold.ttc"
FONT_FACE = "Noto Sans CJK SC"

SEAL_RED = (214, 0, 0, 255)
IMAGE_SIZE = 600
MAX_IMAGE_BYTES = 2 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_IMAGE_SIDE = 4096

# Characters every seal's appearance may need besides its own names.
APPEARANCE_LABELS = "签章时间：扫码验证电子印章文档编号" + "Sealed:verify at "
BASE_CHARSET = "".join(chr(c) for c in range(0x20, 0x7F)) + "：（）年月日时分秒·—"


def font_path(bold: bool = False) -> Path:
    name = FONT_BOLD_FILE if bold else FONT_FILE
    for directory in FONT_DIRS:
        if (directory / name).exists():
            return directory / name
    raise Problem(Kind.UNAVAILABLE, "signing.font_missing", f"{name} not found (Debian package fonts-noto-cjk)")


@functools.lru_cache(maxsize=2)
def _face_index(path: str) -> int:
    from fontTools.ttLib import TTCollection

    collection = TTCollection(path, lazy=True)
    for i, font in enumerate(collection.fonts):
        if font["name"].getDebugName(1) == FONT_FACE:
            return i
    return 0


def subset_font(text: str) -> bytes:
    """An OpenType (CFF) subset of Noto Sans CJK SC covering ``text`` plus the fixed labels."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    path = str(font_path())
    font = TTFont(path, fontNumber=_face_index(path), lazy=False)
    # Small and cheap to re-subset per document: no layout tables (horizontal CJK and ASCII need
    # no shaping), no hinting, only the name records a PDF font needs.
    options = subset.Options()
    options.layout_features = []
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "BASE", "JSTF", "vhea", "vmtx", "VORG"]
    options.hinting = False
    options.name_IDs = [1, 2, 3, 4, 6]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options=options)
    subsetter.populate(text=text + APPEARANCE_LABELS + BASE_CHARSET)
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


# -- the default stamp image ---------------------------------------------------------------------


def _pil_font(size: int, *, bold: bool = True):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    path = str(font_path(bold=bold))
    return ImageFont.truetype(path, size, index=_face_index(path))


def default_seal_png(department: str, seal_name: str) -> bytes:
    """The conventional red round seal, drawn at 600×600 with a transparent background."""
    from PIL import Image, ImageDraw

    size = IMAGE_SIZE
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    centre = size / 2
    ring = 18
    draw.ellipse((ring / 2, ring / 2, size - ring / 2, size - ring / 2), outline=SEAL_RED, width=ring)
    # Five-pointed star in the centre.
    r_outer, r_inner = size * 0.15, size * 0.15 * 0.382
    points = []
    for k in range(10):
        r = r_outer if k % 2 == 0 else r_inner
        angle = -math.pi / 2 + k * math.pi / 5
        points.append((centre + r * math.cos(angle), centre + r * math.sin(angle)))
    draw.polygon(points, fill=SEAL_RED)
    # Department name along the upper arc, each glyph rotated to face the centre.
    text = department[:24]
    if text:
        glyph_size = max(34, min(64, int(1000 / max(len(text), 1))))
        font = _pil_font(glyph_size)
        radius = size / 2 - ring - glyph_size * 0.75
        span = min(math.radians(250), math.radians(22) * len(text))
        start = -math.pi / 2 - span / 2
        step = span / max(len(text) - 1, 1)
        for i, ch in enumerate(text):
            angle = start + i * step if len(text) > 1 else -math.pi / 2
            tile = Image.new("RGBA", (glyph_size * 2, glyph_size * 2), (0, 0, 0, 0))
            ImageDraw.Draw(tile).text((glyph_size, glyph_size), ch, font=font, fill=SEAL_RED, anchor="mm")
            tile = tile.rotate(-math.degrees(angle + math.pi / 2), resample=Image.BICUBIC)
            x = centre + radius * math.cos(angle) - glyph_size
            y = centre + radius * math.sin(angle) - glyph_size
            img.alpha_composite(tile, (int(x), int(y)))
    name = seal_name[:12]
    if name:
        font = _pil_font(max(30, min(48, int(400 / max(len(name), 1)))))
        draw.text((centre, size * 0.73), name, font=font, fill=SEAL_RED, anchor="mm")
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def check_seal_png(data: bytes) -> bytes:
    """Validate an uploaded stamp image: a PNG of sane size; normalised to RGBA PNG."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise Problem(Kind.TOO_LARGE, "signing.image_too_large", f"seal images are limited to {MAX_IMAGE_BYTES} bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise Problem(Kind.UNSUPPORTED_MEDIA_TYPE, "signing.image_not_png", "the seal image must be a PNG")
            if img.width > MAX_IMAGE_SIDE or img.height > MAX_IMAGE_SIDE or img.width < 32 or img.height < 32:
                raise Problem(Kind.VALIDATION, "signing.image_size", "the seal image must be between 32×32 and 4096×4096 pixels")
            img.load()
            out = io.BytesIO()
            img.convert("RGBA").save(out, format="PNG")
            return out.getvalue()
    except Image.DecompressionBombError as exc:  # a header claiming hundreds of megapixels
        raise Problem(Kind.VALIDATION, "signing.image_size", "the seal image must be between 32×32 and 4096×4096 pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise Problem(Kind.INVALID_INPUT, "signing.image_unreadable", "the seal image is not a readable PNG") from exc


# -- pyHanko stamp style -------------------------------------------------------------------------


@dataclass(frozen=True)
class SealLook:
    """Everything needed to draw one seal's visible signature (cached per seal and process)."""

    image_png: bytes
    font_otf: bytes
    department: str
    seal_name: str


_CFF_PROGRAMS: dict[bytes, bytes] = {}


def _cff_program(font_otf: bytes, engine: Any) -> bytes:
    """The compressed CFF font program of a seal's subset, compiled once per process."""
    key = hashlib.sha256(font_otf).digest()
    program = _CFF_PROGRAMS.get(key)
    if program is None:
        buf = io.BytesIO()
        engine.cidfont_obj.cff.compile(buf, engine.tt)
        program = zlib.compress(buf.getvalue())
        _CFF_PROGRAMS[key] = program
    return program


def _font_factory(font_otf: bytes, size: int):  # type: ignore[no-untyped-def]
    """A pyHanko font engine over a seal's (already subset) font held in memory.

    pyHanko would subset and recompile the font for every document (most of the signing time);
    the seal's font is a few kB already, so it is embedded whole, compiled once per process.
    """
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.font.api import FontEngineFactory
    from pyhanko.pdf_utils.font.opentype import CIDFontType0, GlyphAccumulator

    class _SealFontEngine(GlyphAccumulator):
        def _extract_subset(self, options: Any = None) -> None:
            return None

    def _set_font_file(cidfont: Any, engine: Any, writer: Any) -> Any:
        stream = generic.StreamObject({generic.pdf_name("/Subtype"): generic.pdf_name("/CIDFontType0C"), generic.pdf_name("/Filter"): generic.pdf_name("/FlateDecode")}, encoded_data=_cff_program(font_otf, engine))
        ref = writer.add_object(stream)
        cidfont._font_descriptor[generic.pdf_name("/FontFile3")] = ref
        return ref

    class _BytesFontFactory(FontEngineFactory):
        def create_font_engine(self, writer, obj_stream=None):  # type: ignore[no-untyped-def]
            if obj_stream is None and writer.stream_xrefs:
                obj_stream = writer.prepare_object_stream()
            engine = _SealFontEngine(writer=writer, font_handle=io.BytesIO(font_otf), font_size=size, bcp47_lang_code="zh-CN", obj_stream=obj_stream)
            cidfont = engine.cidfont_obj
            if isinstance(cidfont, CIDFontType0):
                cidfont.set_font_file = lambda w: _set_font_file(cidfont, engine, w)  # type: ignore[method-assign]
            return engine

    return _BytesFontFactory()


@functools.lru_cache(maxsize=64)
def stamp_style(look: SealLook):  # type: ignore[no-untyped-def]
    """The pyHanko style for a seal (immutable, so one instance serves every signature)."""
    from PIL import Image
    from pyhanko.pdf_utils.images import PdfImage
    from pyhanko.pdf_utils.layout import Margins, SimpleBoxLayoutRule, AxisAlignment
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import QRPosition, QRStampStyle

    image = Image.open(io.BytesIO(look.image_png))
    image.load()
    return QRStampStyle(
        stamp_text="%(department)s\n签章时间：%(signed_at)s\n扫码验证",
        text_box_style=TextBoxStyle(font=_font_factory(look.font_otf, 9), leading=13),
        background=PdfImage(image),
        background_opacity=0.85,
        background_layout=SimpleBoxLayoutRule(x_align=AxisAlignment.ALIGN_MID, y_align=AxisAlignment.ALIGN_MID, margins=Margins.uniform(2)),
        border_width=0,
        qr_position=QRPosition.RIGHT_OF_TEXT,
        innsep=2,
    )
