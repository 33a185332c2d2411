"""UF2, the USB Flashing Format (github.com/microsoft/uf2), in pure Python.

A UF2 file is a run of independent 512-byte blocks. Each block is a 32-byte header of eight
little-endian uint32 fields (magic 0x0A324655, magic 0x9E5D5157, flags, target address, payload
size, block number, block count, family ID or file size), a 476-byte data area holding the payload
followed by padding, and the final magic 0x0AB16F30.

:func:`to_uf2` writes 256-byte payloads at 256-byte aligned addresses (what the RP2040 boot ROM
insists on, and "always correct" per the specification), pads a short last payload with 0xFF (the
erased-flash value) and the unused data area with 0xFF, and sets the family-ID flag when the board
has a family. :func:`from_uf2` reads any valid file back into contiguous segments.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edge.errors import FlashError

MAGIC_START0 = 0x0A324655  # "UF2\n"
MAGIC_START1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30

FLAG_NOT_MAIN_FLASH = 0x00000001
FLAG_FILE_CONTAINER = 0x00001000
FLAG_FAMILY_ID_PRESENT = 0x00002000
FLAG_MD5_PRESENT = 0x00004000
FLAG_EXTENSION_TAGS = 0x00008000

BLOCK_SIZE = 512
HEADER = struct.Struct("<8I")
DATA_SIZE = 476
END = struct.Struct("<I")
PAYLOAD_SIZE = 256
PAD_BYTE = 0xFF


@dataclass(frozen=True)
class Uf2Block:
    """One decoded 512-byte block."""

    flags: int
    address: int
    payload: bytes
    block_no: int
    num_blocks: int
    family_or_size: int

    @property
    def family_id(self) -> int | None:
        return self.family_or_size if self.flags & FLAG_FAMILY_ID_PRESENT else None


def to_uf2(data: bytes, address: int, family_id: int | None,
           payload_size: int = PAYLOAD_SIZE) -> bytes:
    """``data`` as UF2 blocks to be written at ``address``.

    Args:
        data: bytes to flash (a short last chunk is padded with 0xFF to ``payload_size``).
        address: absolute flash address of ``data[0]``; a multiple of ``payload_size``.
        family_id: the board's UF2 family (flag 0x2000 is set), or None for no family.
        payload_size: bytes per block, a multiple of 4 up to 476.

    Raises:
        FlashError: empty data, misaligned address, or data running past 4 GiB.
    """
    if not data:
        raise FlashError("nothing to convert to UF2: the data is empty")
    if payload_size <= 0 or payload_size % 4 or payload_size > DATA_SIZE:
        raise FlashError(f"UF2 payload size (={payload_size}) must be a multiple of 4 in "
                         f"[4...{DATA_SIZE}]")
    if address % payload_size:
        raise FlashError(f"UF2 target address {address:#x} must be a multiple of {payload_size}")
    num_blocks = -(-len(data) // payload_size)
    if address + num_blocks * payload_size > 2**32:
        raise FlashError(f"UF2 data at {address:#x} runs past the 32-bit address space")
    flags = FLAG_FAMILY_ID_PRESENT if family_id is not None else 0
    out = bytearray()
    for block_no in range(num_blocks):
        chunk = data[block_no * payload_size:(block_no + 1) * payload_size]
        chunk = bytes(chunk).ljust(payload_size, bytes([PAD_BYTE]))
        out += HEADER.pack(MAGIC_START0, MAGIC_START1, flags, address + block_no * payload_size,
                           payload_size, block_no, num_blocks, family_id or 0)
        out += chunk.ljust(DATA_SIZE, bytes([PAD_BYTE]))
        out += END.pack(MAGIC_END)
    return bytes(out)


def parse_blocks(blob: bytes) -> list[Uf2Block]:
    """Every block of a UF2 file, checked for magic numbers and sizes.

    Raises:
        FlashError: the length is not a multiple of 512 or a block is malformed; the message
            names the block.
    """
    if not blob or len(blob) % BLOCK_SIZE:
        raise FlashError(f"not a UF2 file: {len(blob)} bytes is not a positive multiple of "
                         f"{BLOCK_SIZE}")
    blocks = []
    for index in range(len(blob) // BLOCK_SIZE):
        raw = blob[index * BLOCK_SIZE:(index + 1) * BLOCK_SIZE]
        m0, m1, flags, address, size, block_no, num_blocks, family = HEADER.unpack_from(raw)
        (m_end,) = END.unpack_from(raw, BLOCK_SIZE - END.size)
        if (m0, m1, m_end) != (MAGIC_START0, MAGIC_START1, MAGIC_END):
            raise FlashError(f"UF2 block {index}: bad magic numbers "
                             f"({m0:#010x}, {m1:#010x}, {m_end:#010x})")
        if size > DATA_SIZE:
            raise FlashError(f"UF2 block {index}: payload size (={size}) must be in "
                             f"[0...{DATA_SIZE}]")
        if block_no >= num_blocks:
            raise FlashError(f"UF2 block {index}: block number {block_no} is not below the "
                             f"block count {num_blocks}")
        payload = bytes(raw[HEADER.size:HEADER.size + size])
        blocks.append(Uf2Block(flags, address, payload, block_no, num_blocks, family))
    return blocks


def from_uf2(blob: bytes, family_id: int | None = None) -> list[tuple[int, bytes]]:
    """The flash contents a UF2 file describes, as sorted contiguous ``(address, bytes)``.

    Blocks flagged "not main flash" or "file container" are skipped, and so, when ``family_id`` is
    given, are blocks of another family (as a bootloader would).

    Raises:
        FlashError: a malformed block, or two blocks writing the same address.
    """
    wanted = [b for b in parse_blocks(blob)
              if not b.flags & (FLAG_NOT_MAIN_FLASH | FLAG_FILE_CONTAINER)
              and (family_id is None or b.family_id == family_id)]
    segments: list[tuple[int, bytearray]] = []
    for block in sorted(wanted, key=lambda b: b.address):
        if segments and block.address < segments[-1][0] + len(segments[-1][1]):
            raise FlashError(f"UF2 blocks overlap at {block.address:#x}")
        if segments and block.address == segments[-1][0] + len(segments[-1][1]):
            segments[-1][1].extend(block.payload)
        else:
            segments.append((block.address, bytearray(block.payload)))
    return [(address, bytes(data)) for address, data in segments]
