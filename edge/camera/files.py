"""A folder of still images (or one image file) as a finite frame source, in file-name order."""

from __future__ import annotations

import time
from pathlib import Path

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS
from edge.camera.base import Frame, FrameSource
from edge.camera.images import read_rgb
from edge.errors import CameraError, ImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm",
                            ".pgm", ".gif"})


class ImageFolderSource(FrameSource):
    """Every image in ``folder`` once (or round and round with ``loop``), as RGB frames.

    Args:
        folder: directory of images (sub-directories are not searched), or one image file.
        loop: start again after the last image.
        max_pixels: an image whose header claims more pixels is skipped, never decoded.
    """

    live = False

    def __init__(self, folder: str | Path, *, loop: bool = False,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        super().__init__()
        self.max_pixels = max_pixels
        self.folder = Path(folder)
        self.name = str(folder)
        self.loop = loop
        self._paths: list[Path] = []
        self._position = 0

    def open(self) -> None:
        if self.folder.is_file():
            self._paths, self._position = [self.folder], 0
            return
        if not self.folder.is_dir():
            raise CameraError(f"{self.folder}: not a folder of images")
        self._paths = sorted(p for p in self.folder.iterdir()
                             if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self._paths:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise CameraError(f"{self.folder}: no images in it (looked for {suffixes})")
        self._position = 0

    def close(self) -> None:
        self._paths = []

    def read(self) -> Frame | None:
        if self._position >= len(self._paths):
            if not self.loop or not self._paths:
                return None
            self._position = 0
        path = self._paths[self._position]
        self._position += 1
        try:
            rgb = read_rgb(path, max_pixels=self.max_pixels)
        except ImageError as e:
            raise CameraError(str(e)) from e
        return self._frame(rgb, time.monotonic_ns())
