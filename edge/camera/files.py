"""Image files: what a folder or glob pattern names, and a folder (or one image file) as a
finite frame source, in file-name order."""

from __future__ import annotations

import glob
import time
from collections.abc import Iterable
from pathlib import Path

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS
from edge.camera.base import Frame, FrameSource
from edge.camera.images import read_rgb
from edge.errors import CameraError, ImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm",
                            ".pgm", ".gif"})
GLOB_CHARS = frozenset("*?[")


def is_image_name(path: Path) -> bool:
    """Whether the file name has one of :data:`IMAGE_SUFFIXES` (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def folder_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name.

    Raises:
        CameraError: it is not a folder, or holds no image.
    """
    if not folder.is_dir():
        raise CameraError(f"{folder}: not a folder of images")
    paths = sorted(p for p in folder.iterdir() if is_image_name(p) and p.is_file())
    if not paths:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise CameraError(f"{folder}: no images in it (looked for {suffixes})")
    return paths


def expand_images(specs: Iterable[str]) -> list[Path]:
    """The image files named by ``specs``, in order: a file as given, a folder's images
    and a glob pattern's matching images (``*.jpg``, ``shots/**/*.png``) each sorted by name.

    Folders and patterns keep image files only (by suffix); a file named outright is taken
    whatever its suffix. Duplicates are kept (the user asked twice).

    Raises:
        CameraError: a file or folder does not exist, or a folder or pattern names no image.
    """
    paths: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            paths += folder_images(path)
        elif path.is_file():
            paths.append(path)
        elif GLOB_CHARS.intersection(spec):
            found = sorted(Path(p) for p in glob.glob(spec, recursive=True))
            images = [p for p in found if is_image_name(p) and p.is_file()]
            if not images:
                raise CameraError(f"{spec}: no image file matches this pattern")
            paths += images
        else:
            raise CameraError(f"{spec}: no such image file or folder; check the path")
    return paths


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
        self._paths = folder_images(self.folder)
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
        return self._frame(rgb, time.monotonic_ns(), file=str(path))
