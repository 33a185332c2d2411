"""Image files as arrays: header checked against a pixel limit before OpenCV decodes anything.

The one place edge decodes still images (``edge-classify``, image folders of ``edge-run``,
representative images of ``edge-model``). The file is read whole and bounded, its header's
claimed size is checked against ``max_pixels``, and only then does ``cv2.imdecode`` run. We do not
rely on OpenCV's own ``OPENCV_IO_MAX_IMAGE_PIXELS``: it is an environment variable read once per
process (setting it from a library is a side effect on everything else) and its default, 2**30
pixels, is 3 GB of BGR pixels, more than small boards have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS
from edge.bounded_read import read_bounded
from edge.camera.image_header import FORMAT_NAMES, ImageHeader, read_header
from edge.camera.opencv import import_cv2
from edge.errors import ImageError


def file_limit(max_pixels: int) -> int:
    """Bytes an image file may have: an uncompressed 32-bit BMP at the pixel limit, plus 1 MiB."""
    return 4 * max_pixels + (1 << 20)


def check_header(path: str | Path, data: bytes, max_pixels: int) -> ImageHeader:
    """The header of ``data`` if its claimed size is within ``max_pixels``.

    Raises:
        ImageError: not a format edge reads, an empty size, or more pixels than allowed.
    """
    header = read_header(data)
    if header is None:
        raise ImageError(f"{path}: not a {FORMAT_NAMES} image, or its header is damaged")
    if header.pixels == 0:
        raise ImageError(f"{path}: {header.format} header claims an empty image "
                         f"({header.width}x{header.height})")
    if header.pixels > max_pixels:
        megabytes = header.pixels * 3 / 1e6
        raise ImageError(f"{path}: {header.format} header claims {header.width}x{header.height}"
                         f" = {header.pixels:,} pixels (about {megabytes:,.0f} MB to decode), "
                         f"over the limit of {max_pixels:,}; shrink the image or raise the "
                         "limit with --max-image-pixels")
    return header


def _load(path: str | Path, max_pixels: int) -> tuple[bytes, ImageHeader]:
    data = read_bounded(path, file_limit(max_pixels), error=ImageError, what="image")
    return data, check_header(path, data, max_pixels)


def check_image_file(path: str | Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
                     ) -> ImageHeader:
    """Everything :func:`read_image` checks before decoding: cheap, and no decoder runs.

    Raises:
        ImageError: unreadable, not a regular file, not an image, or too large.
    """
    return _load(path, max_pixels)[1]


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               grayscale: bool = False) -> np.ndarray:
    """An image file as BGR (or grayscale) uint8.

    Args:
        path: the image file (a regular file; FIFOs and devices are refused).
        max_pixels: the most pixels its header may claim.
        grayscale: decode to one channel.

    Raises:
        ImageError: unreadable, not an image, too large, or undecodable.
    """
    data, header = _load(path, max_pixels)
    cv2: Any = import_cv2()
    flag = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    except cv2.error as e:
        raise ImageError(f"{path}: OpenCV cannot decode this {header.format} image: "
                         f"{_cv2_reason(e)}") from e
    if image is None:
        raise ImageError(f"{path}: OpenCV cannot decode this {header.format} image (damaged, or"
                         " a variant OpenCV does not read)")
    return np.asarray(image)


def read_rgb(path: str | Path, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file as RGB uint8, like camera frames."""
    cv2: Any = import_cv2()
    return np.asarray(cv2.cvtColor(read_image(path, max_pixels=max_pixels), cv2.COLOR_BGR2RGB))


def _cv2_reason(error: Exception) -> str:
    """The last non-empty line of an OpenCV error, which holds its message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
