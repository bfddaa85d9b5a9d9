"""A few DER encoders (ITU-T X.690 §8, §10) for the hot paths that build the same structures
thousands of times a second (timestamp tokens, CMS signed attributes). Parsing stays with
asn1crypto; these only *write*, from values we produced or already validated.
"""

from __future__ import annotations

from datetime import UTC, datetime


def length(n: int) -> bytes:
    """Definite-form length octets (X.690 §10.1: the shortest form)."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + length(len(content)) + content


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def set_of(*parts: bytes) -> bytes:
    """DER SET OF: elements sorted by their encodings (X.690 §11.6)."""
    return tlv(0x31, b"".join(sorted(parts)))


def integer(n: int) -> bytes:
    """Two's complement, minimal octets (X.690 §8.3)."""
    size = (n.bit_length() + 8) // 8 if n >= 0 else ((-n - 1).bit_length() + 8) // 8
    return tlv(0x02, n.to_bytes(max(size, 1), "big", signed=True))


def octet_string(data: bytes) -> bytes:
    return tlv(0x04, data)


def boolean(value: bool) -> bytes:
    return b"\x01\x01" + (b"\xff" if value else b"\x00")


def utf8(text: str) -> bytes:
    return tlv(0x0C, text.encode("utf-8"))


def oid(dotted: str) -> bytes:
    """OBJECT IDENTIFIER (X.690 §8.19)."""
    arcs = [int(a) for a in dotted.split(".")]
    first = arcs[0] * 40 + arcs[1]
    body = bytearray()
    for arc in [first, *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def explicit(number: int, content: bytes) -> bytes:
    """[number] EXPLICIT, constructed context tag."""
    return tlv(0xA0 | number, content)


def bit_string_named(bits: list[int]) -> bytes:
    """A NamedBitList BIT STRING with trailing zero bits removed (X.690 §11.2.2)."""
    if not bits:
        return b"\x03\x01\x00"
    top = max(bits)
    nbytes = top // 8 + 1
    value = bytearray(nbytes)
    for b in bits:
        value[b // 8] |= 0x80 >> (b % 8)
    unused = nbytes * 8 - (top + 1)
    return tlv(0x03, bytes((unused,)) + bytes(value))


def generalized_time(at: datetime) -> bytes:
    """GeneralizedTime in UTC with fractional seconds, no trailing zeros (RFC 3161 §2.4.2)."""
    at = at.astimezone(UTC)
    text = at.strftime("%Y%m%d%H%M%S")
    if at.microsecond:
        text += "." + f"{at.microsecond:06d}".rstrip("0")
    return tlv(0x18, (text + "Z").encode("ascii"))


def utc_time(at: datetime) -> bytes:
    """UTCTime (RFC 5280 §4.1.2.5.1 form), valid for 1950–2049."""
    return tlv(0x17, at.astimezone(UTC).strftime("%y%m%d%H%M%SZ").encode("ascii"))
