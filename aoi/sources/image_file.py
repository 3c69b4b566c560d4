"""Whether an image file is whole: JPEG, PNG and BMP files cut short are found before decoding.

OpenCV decodes a JPEG truncated to 80-95 % without an error: libjpeg warns "Premature end of
JPEG file" and fills the missing rows with grey, which the network then sees as one defect over
most of the board. A truncated PNG can likewise come back partly decoded. These checks walk the
file's own structure (markers, chunks, the declared size) and say what is missing.
"""

from __future__ import annotations

import struct

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BMP_MAGIC = b"BM"

#: JPEG markers without a length field: SOI, EOI, TEM and the restart markers RST0-7.
_STANDALONE = frozenset({0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)})
_SOS, _EOI = 0xDA, 0xD9


def missing_part(data: bytes) -> str | None:
    """What is missing from a JPEG, PNG or BMP file's bytes, or None if it is whole.

    Other formats (TIFF) and files of no known format give None: their decoder judges them.
    """
    if data.startswith(_JPEG_SOI):
        return _jpeg_missing(data)
    if data.startswith(_PNG_SIGNATURE):
        return _png_missing(data)
    if data.startswith(_BMP_MAGIC) and len(data) >= 6:
        (declared,) = struct.unpack_from("<I", data, 2)
        if len(data) < declared:
            return f"BMP declares {declared} bytes, the file has {len(data)}"
    return None


def _jpeg_missing(data: bytes) -> str | None:
    """Walk the JPEG's marker segments and entropy-coded scans to its EOI marker (FF D9).

    Segments are skipped by their length, so an EXIF thumbnail's own EOI is not taken for the
    image's; bytes after the EOI (zero padding, a camera's trailer) are allowed.
    """
    n = len(data)
    i = 2
    while True:
        # A marker: one or more 0xFF fill bytes, then the marker code. Stray bytes before it
        # are skipped, as libjpeg does ("extraneous bytes before marker").
        i = data.find(b"\xff", i)
        if i < 0:
            return f"the JPEG ends at byte {n} before its end marker FF D9"
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            return f"the JPEG ends at byte {n} inside a marker, before its end marker FF D9"
        code = data[i]
        i += 1
        if code == _EOI:
            return None
        if code in _STANDALONE:
            continue
        if i + 2 > n:
            return f"the JPEG ends at byte {n} inside a segment, before its end marker FF D9"
        (length,) = struct.unpack_from(">H", data, i)
        i += length
        if i > n:
            return f"the JPEG ends at byte {n} inside a segment, before its end marker FF D9"
        if code == _SOS:
            i = _scan_end(data, i)
            if i >= n:
                return f"the JPEG ends at byte {n} inside image data, before its end marker FF D9"


def _scan_end(data: bytes, i: int) -> int:
    """The index of the marker that ends the entropy-coded data starting at ``i``."""
    n = len(data)
    while True:
        i = data.find(b"\xff", i)
        if i < 0 or i + 1 >= n:
            return n
        following = data[i + 1]
        # FF 00 is a stuffed data byte, FF D0-D7 a restart marker, FF FF fill: all inside a scan.
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            i += 1 if following == 0xFF else 2
            continue
        return i


def _png_missing(data: bytes) -> str | None:
    """Walk the PNG's chunks to its IEND chunk."""
    n = len(data)
    i = len(_PNG_SIGNATURE)
    while i + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, i)
        i += 12 + length  # length, type, data, CRC
        if i > n:
            return f"the PNG ends at byte {n} inside its {kind.decode('latin-1')!r} chunk"
        if kind == b"IEND":
            return None
    return f"the PNG ends at byte {n} before its IEND chunk"
