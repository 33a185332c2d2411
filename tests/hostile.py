"""Hostile inputs, generated (never copied): decompression bombs, deep TOML, special files.

Each image bomb is a well-formed header claiming ``width x height`` pixels followed by little or
no pixel data, as an attacker would send; the reader must refuse it from the header alone.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

BOMB_SIDE = 100_000  # 10**10 pixels: 30 GB once decoded to BGR


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = BOMB_SIDE, height: int = BOMB_SIDE) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def real_png_bomb(width: int, height: int) -> bytes:
    """A complete, valid grayscale PNG of zeros: small on disk, ``width*height*3`` in BGR."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)  # fast on runs of zeros
    rows, extra = divmod(height, 100)
    block = b"\0" * (width + 1) * 100  # 100 rows of filter byte + pixels
    parts = [compressor.compress(block) for _ in range(rows)]
    parts += [compressor.compress(b"\0" * (width + 1) * extra), compressor.flush()]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b""))


def jpeg_bomb(width: int = 65_000, height: int = 65_000) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def bmp_bomb(width: int = 60_000, height: int = -60_000) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + header


def gif_bomb() -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", 65_535, 65_535, 0, 0, 0) + b"\x3b"


def webp_bomb() -> bytes:
    side = (1 << 24) - 1
    vp8x = b"\x00\0\0\0" + side.to_bytes(3, "little") + side.to_bytes(3, "little")
    chunk = b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


BOMBS = {"png": png_bomb, "jpg": jpeg_bomb, "bmp": bmp_bomb, "gif": gif_bomb, "webp": webp_bomb}


def deep_toml(depth: int = 5000) -> str:
    """A board profile whose ``name`` is an array nested ``depth`` deep (RecursionError bait)."""
    return "name = " + "[" * depth + "]" * depth + "\nkind = \"linux\"\n"


def make_fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path
