"""Image files: the header's claimed size is checked against a pixel limit before any decoder
runs; the header parser is a pure function tested on bytes OpenCV itself wrote."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS, get_board
from edge.bounded_read import read_bounded
from edge.camera.image_header import read_header
from edge.camera.images import read_image, read_rgb
from edge.errors import ImageError, LabelError
from tests.hostile import BOMBS, make_fifo, png_bomb, real_png_bomb


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif", ".ppm", ".pgm"])
def test_header_size_matches_what_opencv_wrote(suffix: str) -> None:
    shape = (37, 53) if suffix == ".pgm" else (37, 53, 3)
    ok, encoded = cv2.imencode(suffix, np.zeros(shape, np.uint8))
    assert ok
    header = read_header(encoded.tobytes())
    assert header is not None and (header.width, header.height) == (53, 37)


def test_lossless_webp_and_jpeg_after_exif_blocks() -> None:
    ok, webp = cv2.imencode(".webp", np.zeros((7, 300, 3), np.uint8),
                            [cv2.IMWRITE_WEBP_QUALITY, 101])  # >100 = lossless (VP8L)
    assert ok and webp.tobytes()[12:16] == b"VP8L"
    header = read_header(webp.tobytes())
    assert header is not None and (header.width, header.height) == (300, 7)
    ok, jpeg = cv2.imencode(".jpg", np.zeros((9, 11, 3), np.uint8))
    data = jpeg.tobytes()
    exif = b"\xff\xe1" + (2 + 60000).to_bytes(2, "big") + b"\x00" * 60000
    header = read_header(data[:2] + exif + data[2:])
    assert header is not None and (header.format, header.width, header.height) == ("JPEG", 11, 9)


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_bomb_headers_claim_what_they_claim(kind: str) -> None:
    header = read_header(BOMBS[kind]())
    assert header is not None and header.pixels > DEFAULT_MAX_IMAGE_PIXELS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"BM",
                                                b"GIF89a", b"RIFF\0\0\0\0WEBPVP8X",
                                                b"II*\0", b"MM\0*", b"P6 "]))
def test_any_bytes_give_a_header_or_none(tail: bytes, signature: bytes) -> None:
    header = read_header(signature + tail)
    assert header is None or (header.width >= 0 and header.height >= 0)


def test_bomb_is_refused_from_its_header_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb())
    with pytest.raises(ImageError, match=r"100000x100000 = 10,000,000,000 pixels .* over the "
                                         r"limit of 40,000,000; .*--max-image-pixels"):
        read_image(path)


def test_a_real_1mb_png_needing_2gb_is_refused(tmp_path: Path) -> None:
    """A complete, valid PNG (under 1 MB on disk) that would take 2.4 GB as BGR."""
    path = tmp_path / "zeros.png"
    path.write_bytes(real_png_bomb(28_300, 28_300))
    assert path.stat().st_size < 1_100_000
    with pytest.raises(ImageError, match=r"28300x28300 .*about 2,403 MB to decode"):
        read_rgb(path)


def test_the_limit_is_a_parameter(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), np.full((40, 50, 3), 7, np.uint8))
    with pytest.raises(ImageError, match="over the limit of 1,999"):
        read_image(path, max_pixels=1999)
    assert read_image(path, max_pixels=2000).shape == (40, 50, 3)
    assert read_image(path, grayscale=True).shape == (40, 50)


def test_board_profiles_carry_their_limit() -> None:
    zero = get_board("rpi-zero2w").runtime
    assert zero is not None and zero.max_image_pixels == 16_000_000
    host = get_board("host").runtime
    assert host is not None and host.max_image_pixels == DEFAULT_MAX_IMAGE_PIXELS


def test_not_an_image_is_refused_before_opencv(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("hello")
    with pytest.raises(ImageError, match="not a JPEG, PNG, BMP, GIF, WebP, TIFF or PNM"):
        read_image(path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(png_bomb(0, 10))
    with pytest.raises(ImageError, match=r"claims an empty image \(0x10\)"):
        read_image(empty)


def test_special_files_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path / "pipe.png")  # nobody writes: a blocking read would hang
    with pytest.raises(ImageError, match="is a FIFO"):
        read_image(fifo)
    with pytest.raises(ImageError, match="is a device"):
        read_image("/dev/zero")
    link = tmp_path / "zero.png"
    link.symlink_to("/dev/zero")
    with pytest.raises(ImageError, match="is a device"):
        read_image(link)
    with pytest.raises(ImageError, match="is a directory"):
        read_image(tmp_path)
    with pytest.raises(ImageError, match="no such image file"):
        read_image(tmp_path / "missing.png")


def test_bounded_read_counts_bytes_read(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_bytes(b"x" * 11)
    assert read_bounded(path, 11, error=LabelError, what="labels") == b"x" * 11
    with pytest.raises(LabelError, match="larger than 10 bytes"):
        read_bounded(path, 10, error=LabelError, what="labels")
