"""The model image codec (firmware_export.image): pure bytes in, bytes out."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import FlashError, LabelError, ModelError
from firmware_export import image as img

DATA = Path(__file__).parents[1] / ".." / "shared" / "data"

u32 = st.integers(0, 2**32 - 1)
headers = st.builds(img.ImageHeader, payload_length=u32, model_length=u32, payload_crc=u32,
                    arena_size=u32, label_count=u32, board_id=u32)
labels_st = st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0"),
                             max_size=20), max_size=30)


def tiny_model(body: bytes = b"") -> bytes:
    """The first 8 bytes of a flatbuffer with the .tflite identifier, then anything."""
    return b"\x18\x00\x00\x00TFL3" + body


@given(headers)
def test_header_round_trips(header: img.ImageHeader) -> None:
    packed = img.pack_header(header)
    assert len(packed) == img.HEADER_SIZE == 64
    assert img.unpack_header(packed) == header


@given(headers)
def test_header_layout_matches_the_documented_offsets(header: img.ImageHeader) -> None:
    packed = img.pack_header(header)
    assert packed[:4] == b"EDGM"
    assert struct.unpack_from("<HH", packed, 4) == (1, 64)
    assert struct.unpack_from("<7I", packed, 8) == (
        header.payload_length, header.model_length, header.payload_crc, header.arena_size,
        header.label_count, header.board_id, 0)
    assert packed[32:60] == bytes(28)
    assert struct.unpack_from("<I", packed, 60)[0] == zlib.crc32(packed[:60])


@given(st.binary(max_size=2000), labels_st, st.integers(1, 2**32 - 1),
       st.sampled_from(["esp32s3", "pico", "nano33ble"]))
def test_image_round_trips(body: bytes, labels: list[str], arena: int, board: str) -> None:
    model = tiny_model(body)
    data = img.build_image(model, labels, arena, board)
    parsed = img.parse_image(data + b"\xff" * 100, board)  # erased flash after it is ignored
    assert parsed.model == model
    assert parsed.labels == tuple(labels)
    assert parsed.header.arena_size == arena
    assert parsed.header.label_count == len(labels)
    assert parsed.header.board_id == img.board_id(board)
    assert data[64:64 + len(model)] == model


@given(st.binary(min_size=1, max_size=200), st.data())
def test_every_single_bit_flip_is_rejected_by_the_python_reader(body: bytes,
                                                                 data: st.DataObject) -> None:
    image = bytearray(img.build_image(tiny_model(body), ["a", "b"], 100, "pico"))
    bit = data.draw(st.integers(0, 8 * len(image) - 1))
    image[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FlashError):
        img.parse_image(bytes(image), "pico")


def test_real_model_round_trips() -> None:
    path = DATA / "models" / "person_detect.tflite"
    if not path.is_file():
        pytest.skip(f"shared reference data not found at {path}")
    model = path.read_bytes()
    data = img.build_image(model, ["no person", "person"], 85264, "esp32s3")
    assert len(data) == 64 + len(model) + len("no person\nperson\n")
    parsed = img.parse_image(data, "esp32s3")
    assert parsed.model == model and parsed.labels == ("no person", "person")


def test_board_identity_is_crc32_of_the_name() -> None:
    assert img.board_id("esp32s3") == zlib.crc32(b"esp32s3")
    assert len({img.board_id(b) for b in ("esp32s3", "pico", "nano33ble", "stm32h743",
                                          "stm32f746-disco", "teensy41")}) == 6


def test_image_for_another_board_is_refused() -> None:
    data = img.build_image(tiny_model(), [], 1, "pico")
    with pytest.raises(FlashError, match="another board"):
        img.parse_image(data, "esp32s3")
    assert img.parse_image(data).header.board_id == img.board_id("pico")


@pytest.mark.parametrize("cut", [0, 10, 63, 64, 72])
def test_truncated_image_is_refused(cut: int) -> None:
    data = img.build_image(tiny_model(b"x" * 20), ["a"], 1, "pico")
    with pytest.raises(FlashError, match="truncated"):
        img.parse_image(data[:cut])


def test_not_an_image() -> None:
    with pytest.raises(FlashError, match="magic"):
        img.parse_image(b"\xff" * 128)


@pytest.mark.parametrize("model", [b"", b"TFL3", b"\x18\x00\x00\x00TFL2", b"PK\x03\x04" * 4])
def test_non_tflite_models_are_refused(model: bytes) -> None:
    with pytest.raises(ModelError):
        img.build_image(model, [], 1, "pico")


@pytest.mark.parametrize("label", ["two\nlines", "cr\r", "nul\0"])
def test_labels_with_line_breaks_are_refused(label: str) -> None:
    with pytest.raises(LabelError):
        img.build_image(tiny_model(), [label], 1, "pico")


@pytest.mark.parametrize("field", ["arena_size", "label_count", "payload_length"])
def test_header_fields_out_of_range_are_refused(field: str) -> None:
    values = dict(payload_length=1, model_length=1, payload_crc=0, arena_size=1, label_count=0,
                  board_id=0)
    values[field] = 2**32
    with pytest.raises(FlashError, match=field):
        img.pack_header(img.ImageHeader(**values))
