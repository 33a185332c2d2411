"""The width and height an image file claims, read from its header without decoding it.

A decoder allocates what the header asks for: a 1 MB PNG can claim 100000x100000 pixels and
take tens of gigabytes. Reading the claim first lets the caller refuse it before any decoder
runs. Pure functions over bytes: JPEG, PNG, BMP, GIF, WebP, TIFF and PNM (PBM/PGM/PPM).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

FORMAT_NAMES = "JPEG, PNG, BMP, GIF, WebP, TIFF or PNM (PBM/PGM/PPM)"


@dataclass(frozen=True)
class ImageHeader:
    """What an image file says about itself."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _png(data: bytes) -> ImageHeader | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader("PNG", width, height)


def _gif(data: bytes) -> ImageHeader | None:
    if len(data) < 10:
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return ImageHeader("GIF", width, height)


def _bmp(data: bytes) -> ImageHeader | None:
    if len(data) < 26:
        return None
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ImageHeader("BMP", abs(width), abs(height))  # a negative height is top-down


_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                       0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _jpeg(data: bytes) -> ImageHeader | None:
    """Walk the marker segments up to the first start-of-frame."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame
            return None
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _JPEG_SOF:
            if length < 7 or pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return ImageHeader("JPEG", width, height)
        if length < 2:
            return None
        pos += 2 + length
    return None


def _webp(data: bytes) -> ImageHeader | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return ImageHeader("WebP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return ImageHeader("WebP", width, height)
    return None


def _tiff(data: bytes) -> ImageHeader | None:
    """ImageWidth (256) and ImageLength (257) of the first image file directory."""
    order = "<" if data[:2] == b"II" else ">"
    if len(data) < 8:
        return None
    (offset,) = struct.unpack(order + "I", data[4:8])
    if offset + 2 > len(data):
        return None
    (count,) = struct.unpack(order + "H", data[offset:offset + 2])
    sizes: dict[int, int] = {}
    for entry in range(offset + 2, min(offset + 2 + 12 * count, len(data) - 11), 12):
        tag, kind = struct.unpack(order + "HH", data[entry:entry + 4])
        if tag in (256, 257):
            fmt = order + ("H" if kind == 3 else "I")
            (sizes[tag],) = struct.unpack_from(fmt, data, entry + 8)
    if 256 not in sizes or 257 not in sizes:
        return None
    return ImageHeader("TIFF", sizes[256], sizes[257])


_PNM = re.compile(rb"P[1-6](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)")


def _pnm(data: bytes) -> ImageHeader | None:
    match = _PNM.match(data[:1024])
    if match is None:
        return None
    return ImageHeader("PNM", int(match.group(1)), int(match.group(2)))


_SIGNATURES: tuple[tuple[Callable[[bytes], bool], Callable[[bytes], ImageHeader | None]], ...] = (
    (lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"), _png),
    (lambda d: d.startswith(b"\xff\xd8"), _jpeg),
    (lambda d: d.startswith(b"BM"), _bmp),
    (lambda d: d[:6] in (b"GIF87a", b"GIF89a"), _gif),
    (lambda d: d.startswith(b"RIFF") and d[8:12] == b"WEBP", _webp),
    (lambda d: d[:4] in (b"II*\0", b"MM\0*"), _tiff),
    (lambda d: d[:1] == b"P" and d[1:2] in b"123456" and len(d) > 2, _pnm),
)


def read_header(data: bytes) -> ImageHeader | None:
    """The format and size ``data`` claims, or None for another format or a damaged header.

    Only the first bytes are needed for most formats; JPEG may need every segment before its
    frame header (EXIF blocks come first), so pass the whole file when you have it.
    """
    for matches, parse in _SIGNATURES:
        if matches(data):
            return parse(data)
    return None
