"""``edge-classify --masks DIR``: a segmenter's class map and a colour overlay per image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.decode.geometry import Fit
from edge.decode.segment import mask_to_frame, palette
from edge.errors import SinkError
from edge.outputs import atomic_write_bytes
from edge.runtime.postprocess import FrameResult

OVERLAY_ALPHA = 0.5
NOT_SEEN = 255  # pixels of a centre crop's cut-off sides: the model did not see them


class MaskWriter:
    """Writes ``NAME.mask.png`` (class index per pixel, 8-bit, at the image's size; 255 where
    the model saw nothing) and ``NAME.overlay.png`` (class colours over the image) into a
    folder, a name used twice getting ``-2``, ``-3``..."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._used: set[str] = set()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"--masks {folder}: cannot create the folder: {e.strerror}") from e

    def write(self, image: Path, frame_bgr: np.ndarray, result: FrameResult, fit: Fit,
              labels: Sequence[str]) -> dict[str, str]:
        """Write both files of one image; returns their paths for the report."""
        if result.mask is None:
            return {}
        mask = mask_to_frame(result.mask, fit, NOT_SEEN)
        if mask.dtype != np.uint8:
            mask = np.where(mask > NOT_SEEN, NOT_SEEN, mask).astype(np.uint8)
        colours = palette(max(len(labels), int(mask.max()) + 1, NOT_SEEN + 1))[:, ::-1]  # BGR
        colour = colours[mask]
        base = frame_bgr if frame_bgr.ndim == 3 else cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        overlay = cv2.addWeighted(base[:, :, :3], 1 - OVERLAY_ALPHA, colour, OVERLAY_ALPHA, 0)
        stem = self._stem(image)
        paths = {"mask": self.folder / f"{stem}.mask.png",
                 "overlay": self.folder / f"{stem}.overlay.png"}
        for key, pixels in (("mask", mask), ("overlay", overlay)):
            ok, encoded = cv2.imencode(".png", pixels)
            if not ok:
                raise SinkError(f"{paths[key]}: OpenCV could not encode the PNG")
            atomic_write_bytes(paths[key], encoded.tobytes())
        return {key: str(path) for key, path in paths.items()}

    def _stem(self, image: Path) -> str:
        stem, n = image.stem, 1
        while (stem if n == 1 else f"{stem}-{n}") in self._used:
            n += 1
        name = stem if n == 1 else f"{stem}-{n}"
        self._used.add(name)
        return name
