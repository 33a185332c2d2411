"""The C boot-time check (firmware_export/c/edge_model_image.h), compiled with the host's gcc.

A small C driver reads an image file and runs ``edge_model_image_check`` on it: once as is, or
once per single-bit flip inside the driver (not one process per flip), counting how many flips
were accepted and which status each got. Images come from the Python packer
(``firmware_export.image``), so these tests also prove the two sides agree on the format.

Coverage of the bit flips:
- ``model_invoking_error.tflite`` (488 B, a real .tflite file) + labels: every bit of the image,
  header and payload.
- ``person_detect.tflite`` (300,568 B): every bit of the header, every bit of the first and last
  256 bytes of the payload (the flatbuffer root and vtables; the labels), and every bit of every
  1021st payload byte in between: 6,448 payload flips, each a full check with a 300 KB CRC
  (about 1.3 ms here). A full sweep would be 2.4 M flips, about an hour on this machine. CRC-32
  detects every single-bit error by construction; the small model proves it exhaustively.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from firmware_export import image as img

ROOT = Path(__file__).parents[1]
HEADER = ROOT / "firmware_export" / "c" / "edge_model_image.h"
DATA = Path(__file__).parents[1] / ".." / "shared" / "data"
MODELS = DATA / "models"

OK, TRUNCATED, BAD_MAGIC, BAD_VERSION, BAD_HEADER, WRONG_BOARD = 0, 1, 2, 3, 4, 5
BAD_LENGTH, BAD_CRC, NOT_TFLITE, ARENA_TOO_SMALL = 6, 7, 8, 9

DRIVER = r"""
#include "edge_model_image.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *load(const char *path, uint32_t *len) {
    FILE *f = fopen(path, "rb");
    long n;
    uint8_t *buf;
    if (!f) { perror(path); exit(3); }
    fseek(f, 0, SEEK_END); n = ftell(f); fseek(f, 0, SEEK_SET);
    buf = (uint8_t *)malloc((size_t)n + 1u);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { exit(3); }
    fclose(f);
    *len = (uint32_t)n;
    return buf;
}

/* check FILE BOARD ARENA [AVAILABLE]          -> "status reason" + fields when ok
   flips FILE BOARD ARENA FROM TO STRIDE      -> flips every bit of bytes FROM, FROM+STRIDE, ...
                                                 below TO; prints "tested accepted" and the
                                                 count per status */
int main(int argc, char **argv) {
    uint32_t len, board, arena;
    uint8_t *buf;
    if (argc < 5) { return 3; }
    buf = load(argv[2], &len);
    board = (uint32_t)strtoul(argv[3], NULL, 0);
    arena = (uint32_t)strtoul(argv[4], NULL, 0);
    if (strcmp(argv[1], "check") == 0) {
        edge_model_image info;
        uint32_t available = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 0) : len;
        edge_image_status s = edge_model_image_check(buf, available, board, arena, &info);
        printf("%d %s\n", (int)s, edge_model_image_reason(s));
        if (s == EDGE_IMAGE_OK) {
            printf("%lu %lu %lu %lu %lu %ld %ld\n", (unsigned long)info.model_length,
                   (unsigned long)info.labels_length, (unsigned long)info.label_count,
                   (unsigned long)info.arena_size, (unsigned long)info.board_id,
                   (long)(info.model - buf), (long)(info.labels - buf));
            fwrite(info.labels, 1, info.labels_length, stdout);
        }
        return 0;
    } else if (strcmp(argv[1], "flips") == 0 && argc == 8) {
        unsigned long counts[16] = {0};
        unsigned long tested = 0, accepted = 0;
        uint32_t from = (uint32_t)strtoul(argv[5], NULL, 0);
        uint32_t to = (uint32_t)strtoul(argv[6], NULL, 0);
        uint32_t stride = (uint32_t)strtoul(argv[7], NULL, 0);
        uint32_t i;
        int bit, k;
        for (i = from; i < to && i < len; i += stride) {
            for (bit = 0; bit < 8; ++bit) {
                edge_image_status s;
                buf[i] ^= (uint8_t)(1u << bit);
                s = edge_model_image_check(buf, len, board, arena, NULL);
                buf[i] ^= (uint8_t)(1u << bit);
                ++tested;
                if (s == EDGE_IMAGE_OK) { ++accepted; }
                if ((int)s >= 0 && (int)s < 16) { ++counts[(int)s]; }
            }
        }
        printf("%lu %lu", tested, accepted);
        for (k = 0; k < 16; ++k) { printf(" %lu", counts[k]); }
        printf("\n");
        return edge_model_image_check(buf, len, board, arena, NULL) == EDGE_IMAGE_OK ? 0 : 4;
    }
    return 3;
}
"""

CXX_DRIVER = r"""
#include "edge_model_image.h"
int main() {
    static const uint8_t erased[64] = {0xFF};
    edge_model_image info;
    return edge_model_image_check(erased, sizeof erased, 1u, 1u, &info) == EDGE_IMAGE_BAD_MAGIC
        ? 0 : 1;
}
"""


def _model(name: str) -> bytes:
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"shared reference data not found at {path} (see ../shared/data/README.md)")
    return path.read_bytes()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed; the C header check needs a host C compiler")
    folder = tmp_path_factory.mktemp("cdriver")
    source = folder / "driver.c"
    source.write_text(DRIVER)
    exe = folder / "driver"
    subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2",
                    "-I", str(HEADER.parent), str(source), "-o", str(exe)], check=True)
    return exe


class Image:
    """An image file on disk with what the firmware would be told."""

    def __init__(self, path: Path, data: bytes, board: str, arena: int) -> None:
        self.path, self.data, self.board, self.arena = path, data, board, arena

    @property
    def board_id(self) -> int:
        return img.board_id(self.board)


def _write(tmp_path: Path, data: bytes, name: str = "image.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.fixture
def small(tmp_path: Path) -> Image:
    data = img.build_image(_model("model_invoking_error.tflite"), ["no person", "person"], 4096,
                           "nano33ble")
    return Image(_write(tmp_path, data, "small.bin"), data, "nano33ble", 4096)


@pytest.fixture
def person(tmp_path: Path) -> Image:
    data = img.build_image(_model("person_detect.tflite"), ["no person", "person"], 85264,
                           "esp32s3")
    return Image(_write(tmp_path, data, "person.bin"), data, "esp32s3", 85264)


def check(driver: Path, path: Path, board_id: int, arena: int,
          available: int | None = None) -> tuple[int, list[str]]:
    args = [str(driver), "check", str(path), str(board_id), str(arena)]
    if available is not None:
        args.append(str(available))
    out = subprocess.run(args, check=True, capture_output=True).stdout.decode()
    status, _, rest = out.partition(" ")
    return int(status), rest.split("\n")


def flips(driver: Path, image: Image, start: int, stop: int, stride: int = 1
          ) -> tuple[int, int, dict[int, int]]:
    result = subprocess.run([str(driver), "flips", str(image.path), str(image.board_id),
                             str(image.arena), str(start), str(stop), str(stride)],
                            check=True, capture_output=True, timeout=600)
    numbers = [int(x) for x in result.stdout.split()]
    counts = {status: n for status, n in enumerate(numbers[2:]) if n}
    return numbers[0], numbers[1], counts


def test_header_compiles_as_cxx(tmp_path: Path) -> None:
    """The firmware's main.cpp includes it: it must compile as C++ too."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed")
    source = tmp_path / "main.cpp"
    source.write_text(CXX_DRIVER)
    exe = tmp_path / "main"
    subprocess.run([gxx, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-I", str(HEADER.parent),
                    str(source), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)], check=False).returncode == 0


def test_accepts_good_image_and_reports_its_fields(driver: Path, person: Image) -> None:
    status, lines = check(driver, person.path, person.board_id, person.arena)
    assert status == OK and lines[0] == "model image ok"
    model_len, labels_len, count, arena, board, model_at, labels_at = map(int, lines[1].split())
    assert (model_len, count, arena, board) == (300568, 2, 85264, person.board_id)
    assert (model_at, labels_at) == (64, 64 + 300568)
    assert labels_len == len(b"no person\nperson\n")
    assert "\n".join(lines[2:]) == "no person\nperson\n"


def test_accepts_a_larger_arena_and_trailing_erased_flash(driver: Path, person: Image,
                                                         tmp_path: Path) -> None:
    slot = _write(tmp_path, person.data + b"\xff" * 4096, "slot.bin")
    assert check(driver, slot, person.board_id, person.arena + 1)[0] == OK


def test_every_bit_flip_of_a_small_real_model_image_is_rejected(driver: Path,
                                                                small: Image) -> None:
    assert check(driver, small.path, small.board_id, small.arena)[0] == OK
    tested, accepted, counts = flips(driver, small, 0, len(small.data))
    assert tested == 8 * len(small.data) == 8 * (64 + 488 + len(b"no person\nperson\n"))
    assert accepted == 0
    assert counts[BAD_CRC] == 8 * (len(small.data) - 64)  # every payload flip: payload CRC
    assert sum(counts.get(s, 0) for s in (BAD_MAGIC, BAD_VERSION, BAD_HEADER)) == 8 * 64


def test_every_header_bit_flip_of_person_detect_is_rejected(driver: Path, person: Image) -> None:
    tested, accepted, counts = flips(driver, person, 0, 64)
    assert (tested, accepted) == (512, 0)
    assert counts == {BAD_MAGIC: 32, BAD_VERSION: 16, BAD_HEADER: 512 - 48}


def test_payload_bit_flips_of_person_detect_are_rejected(driver: Path, person: Image) -> None:
    end = len(person.data)
    ranges = [(64, 64 + 256, 1), (end - 256, end, 1), (64 + 256, end - 256, 1021)]
    total = 0
    for start, stop, stride in ranges:
        tested, accepted, counts = flips(driver, person, start, stop, stride)
        assert accepted == 0 and counts == {BAD_CRC: tested}
        total += tested
    assert total == 8 * (512 + len(range(64 + 256, end - 256, 1021)))


def test_truncated_images_are_rejected(driver: Path, small: Image, person: Image) -> None:
    for length in range(len(small.data)):
        assert check(driver, small.path, small.board_id, small.arena, length)[0] == TRUNCATED
    for length in (0, 63, 64, len(person.data) - 1):
        assert check(driver, person.path, person.board_id, person.arena, length)[0] == TRUNCATED


def test_image_for_another_board_is_rejected(driver: Path, person: Image) -> None:
    status, lines = check(driver, person.path, img.board_id("pico"), person.arena)
    assert (status, lines[0]) == (WRONG_BOARD, "model image is for another board")


def test_arena_smaller_than_the_header_says_is_rejected(driver: Path, person: Image) -> None:
    assert check(driver, person.path, person.board_id, person.arena - 1)[0] == ARENA_TOO_SMALL


def test_erased_slot_has_no_image(driver: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, b"\xff" * 8192)
    assert check(driver, path, 1, 1)[0] == BAD_MAGIC


def _forged(payload: bytes, model_length: int, board: str = "pico") -> bytes:
    """A header with valid CRCs around a payload the Python packer would refuse."""
    header = img.ImageHeader(payload_length=len(payload), model_length=model_length,
                             payload_crc=zlib.crc32(payload), arena_size=1, label_count=0,
                             board_id=img.board_id(board))
    return img.pack_header(header) + payload


def test_payload_without_tflite_identifier_is_rejected(driver: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, _forged(b"\x18\x00\x00\x00NOPE" + bytes(56), 64))
    assert check(driver, path, img.board_id("pico"), 1)[0] == NOT_TFLITE


def test_model_length_beyond_payload_is_rejected(driver: Path, tmp_path: Path) -> None:
    path = _write(tmp_path, _forged(b"\x18\x00\x00\x00TFL3" + bytes(56), 65))
    assert check(driver, path, img.board_id("pico"), 1)[0] == BAD_LENGTH


def test_future_format_version_is_rejected(driver: Path, small: Image, tmp_path: Path) -> None:
    data = bytearray(small.data)
    struct.pack_into("<H", data, 4, 2)
    struct.pack_into("<I", data, 60, zlib.crc32(bytes(data[:60])))
    path = _write(tmp_path, bytes(data), "v2.bin")
    assert check(driver, path, small.board_id, small.arena)[0] == BAD_VERSION
