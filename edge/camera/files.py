"""A folder of still images as a finite frame source, in file-name order."""

from __future__ import annotations

import time
from pathlib import Path

from edge.camera.base import Frame, FrameSource
from edge.camera.opencv import import_cv2
from edge.errors import CameraError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm",
                            ".pgm"})


class ImageFolderSource(FrameSource):
    """Every image in ``folder`` once (or round and round with ``loop``), as RGB frames.

    Args:
        folder: directory of images; sub-directories are not searched.
        loop: start again after the last image.
    """

    live = False

    def __init__(self, folder: str | Path, *, loop: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.name = str(folder)
        self.loop = loop
        self._paths: list[Path] = []
        self._position = 0

    def open(self) -> None:
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
        cv2 = import_cv2()
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        stamp = time.monotonic_ns()
        if bgr is None:
            raise CameraError(f"{path}: cannot decode this image")
        return self._frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), stamp, file=str(path))
