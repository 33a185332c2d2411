"""UF2 conversion (firmware_export.flash.uf2) against the specification at github.com/microsoft/uf2.

The layout checks read the bytes with the specification's table (eight little-endian uint32 header
fields, 476 data bytes, the final magic), written out here independently of the module's
constants. esptool's own UF2 writer serves as a reference implementation where it is installed.
"""

from __future__ import annotations

import importlib.util
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.boards import get_board
from edge.errors import FlashError
from firmware_export.flash import uf2

RP2040 = 0xE48BFF56
ESP32S3 = 0xC47E5767


def spec_blocks(blob: bytes) -> list[dict[str, object]]:
    """Decode per the specification's table, checking sizes and magic numbers as it states them."""
    assert len(blob) % 512 == 0
    out = []
    for i in range(0, len(blob), 512):
        block = blob[i:i + 512]
        fields = struct.unpack("<8I", block[:32])
        assert fields[0] == 0x0A324655 and block[:4] == b"UF2\n"
        assert fields[1] == 0x9E5D5157
        assert struct.unpack("<I", block[508:512])[0] == 0x0AB16F30
        out.append({"flags": fields[2], "address": fields[3], "size": fields[4],
                    "block_no": fields[5], "num_blocks": fields[6], "family": fields[7],
                    "data": block[32:508]})
    return out


def test_blocks_follow_the_specification_byte_for_byte() -> None:
    data = bytes(range(256)) * 3 + b"tail"  # 772 bytes: three full payloads and a short one
    blob = uf2.to_uf2(data, 0x10100000, RP2040)
    assert len(blob) == 4 * 512
    for n, block in enumerate(spec_blocks(blob)):
        assert block["flags"] == 0x00002000  # familyID present, nothing else
        assert block["address"] == 0x10100000 + 256 * n
        assert block["size"] == 256
        assert (block["block_no"], block["num_blocks"]) == (n, 4)
        assert block["family"] == RP2040
        payload = data[256 * n:256 * (n + 1)]
        assert block["data"] == payload + b"\xff" * (476 - len(payload))
    expected_first = (struct.pack("<8I", 0x0A324655, 0x9E5D5157, 0x2000, 0x10100000, 256, 0, 4,
                                  RP2040) + bytes(range(256)) + b"\xff" * 220
                      + struct.pack("<I", 0x0AB16F30))
    assert blob[:512] == expected_first


def test_without_a_family_the_flag_and_field_are_zero() -> None:
    (block,) = spec_blocks(uf2.to_uf2(b"\x01" * 256, 0x2000, None))
    assert (block["flags"], block["family"]) == (0, 0)


@pytest.mark.parametrize("board, family", [("pico", RP2040), ("esp32s3", ESP32S3)])
def test_family_comes_from_the_board_profile(board: str, family: int) -> None:
    mcu = get_board(board, kind="mcu").mcu
    assert mcu is not None and mcu.uf2_family == family
    blob = uf2.to_uf2(b"\0" * 512, 0, mcu.uf2_family)
    assert {b["family"] for b in spec_blocks(blob)} == {family}


@given(st.binary(min_size=1, max_size=5000), st.integers(0, 2**20).map(lambda n: n * 256),
       st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_parses_back_to_the_same_bytes(data: bytes, address: int, family: int | None) -> None:
    blob = uf2.to_uf2(data, address, family)
    assert len(blob) == 512 * -(-len(data) // 256)
    ((start, back),) = uf2.from_uf2(blob, family)
    assert start == address
    assert back[:len(data)] == data
    assert back[len(data):] == b"\xff" * (len(back) - len(data))  # erased-flash padding
    numbers = [b["block_no"] for b in spec_blocks(blob)]
    assert numbers == list(range(len(numbers)))


@given(st.binary(min_size=1, max_size=2000),
       st.sampled_from([4, 128, 256, 476]))
def test_other_payload_sizes_round_trip(data: bytes, size: int) -> None:
    padded = data + b"\xff" * (-len(data) % size)
    ((start, back),) = uf2.from_uf2(uf2.to_uf2(padded, 0, None, size))
    assert (start, back) == (0, padded)


def test_blocks_of_another_family_are_ignored_and_files_concatenate() -> None:
    blob = uf2.to_uf2(b"A" * 256, 0x1000, RP2040) + uf2.to_uf2(b"B" * 256, 0x1000, ESP32S3)
    assert uf2.from_uf2(blob, RP2040) == [(0x1000, b"A" * 256)]
    assert uf2.from_uf2(blob, ESP32S3) == [(0x1000, b"B" * 256)]
    with pytest.raises(FlashError, match="overlap"):
        uf2.from_uf2(blob)


def test_gaps_give_separate_segments_and_comment_blocks_are_skipped() -> None:
    blob = uf2.to_uf2(b"a" * 256, 0, None) + uf2.to_uf2(b"b" * 256, 0x1000, None)
    comment = bytearray(uf2.to_uf2(b"c" * 256, 0x2000, None))
    struct.pack_into("<I", comment, 8, 0x00000001)  # not main flash
    assert uf2.from_uf2(blob + bytes(comment)) == [(0, b"a" * 256), (0x1000, b"b" * 256)]


@pytest.mark.parametrize("offset, value, message", [
    (0, 0, "magic"), (4, 0, "magic"), (508, 0, "magic"), (16, 477, "payload size"),
    (20, 5, "block number"),
])
def test_malformed_blocks_are_refused(offset: int, value: int, message: str) -> None:
    blob = bytearray(uf2.to_uf2(b"x" * 256, 0, None))
    struct.pack_into("<I", blob, offset, value)
    with pytest.raises(FlashError, match=message):
        uf2.parse_blocks(bytes(blob))


@pytest.mark.parametrize("data, address, size", [
    (b"", 0, 256), (b"x", 0x80, 256), (b"x", 0, 6), (b"x", 0, 480), (b"x" * 512, 2**32 - 256, 256),
])
def test_bad_requests_are_refused(data: bytes, address: int, size: int) -> None:
    with pytest.raises(FlashError):
        uf2.to_uf2(data, address, None, size)


def test_truncated_file_is_refused() -> None:
    with pytest.raises(FlashError, match="multiple of 512"):
        uf2.parse_blocks(uf2.to_uf2(b"x" * 256, 0, None)[:511])


def test_matches_esptools_uf2_writer(tmp_path: Path) -> None:
    """Reference implementation: esptool merge-bin --format uf2 with 256-byte chunks, no MD5.

    Headers and payloads must be identical; esptool pads the unused data area with zeros where
    the current specification (and we) use 0xFF, so the padding is compared separately.
    """
    if importlib.util.find_spec("esptool") is None:
        pytest.skip("esptool is not installed (pip install esptool, the flash extra)")
    data = bytes((i * 7) % 251 for i in range(256 * 5))
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    out = tmp_path / "esptool.uf2"
    subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32s3", "merge-bin",
                    "--format", "uf2", "--chunk-size", "256", "--md5-disable", "-o", str(out),
                    "0x400000", str(source)], check=True, capture_output=True)
    theirs = out.read_bytes()
    ours = uf2.to_uf2(data, 0x400000, ESP32S3)
    assert len(theirs) == len(ours)
    for a, b in zip(spec_blocks(theirs), spec_blocks(ours), strict=True):
        assert {k: v for k, v in a.items() if k != "data"} == \
            {k: v for k, v in b.items() if k != "data"}
        assert a["data"][:256] == b["data"][:256]  # type: ignore[index]
        assert a["data"][256:] == bytes(220) and b["data"][256:] == b"\xff" * 220  # type: ignore[index]
    assert uf2.from_uf2(theirs, ESP32S3) == uf2.from_uf2(ours, ESP32S3) == [(0x400000, data)]
