"""``edge-run --record DIR --label NAME``: keep camera frames as training images.

Frames are saved as the model sees them: after the board's ISP scaling (picamera2 delivers the
lores stream at the model's input size) and the runtime's own crop/resize to the input size,
before quantization, as PNG (lossless) in ``DIR/NAME/``, the layout ``edge-model train``
reads. File names carry the start time of the run and the frame index, so later runs add
images and never replace earlier ones (which keeps the hash split of old images stable).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import SinkError
from edge.outputs import atomic_write_bytes

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^[^/\\\x00-\x1f]{1,100}$")


@dataclass(frozen=True)
class RecordOptions:
    """Where and how often frames are recorded."""

    folder: str
    label: str
    every: int = 1


def check_label(label: str) -> str:
    """A class name usable as one folder name, or :class:`SinkError`."""
    if not _LABEL.match(label) or label in (".", "..") or label.startswith("."):
        raise SinkError(f"--label {label!r} must be a plain folder name (no '/', not hidden), "
                        "e.g. --label empty")
    return label


class FrameRecorder:
    """Saves every ``every``-th frame it is given, resized as the model sees it.

    Args:
        options: folder, label and interval.
        size: model input (width, height).
        resize: ``squash`` or ``crop``, as the classifier does.

    Raises:
        SinkError: the label is not a folder name or the folder cannot be created.
    """

    def __init__(self, options: RecordOptions, size: tuple[int, int], resize: str = "squash"):
        if options.every < 1:
            raise SinkError(f"--every (={options.every}) must be >= 1")
        self.target = Path(options.folder) / check_label(options.label)
        try:
            self.target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"{self.target}: cannot create the recording folder: "
                            f"{e.strerror or e}") from e
        self.every = options.every
        self.size = size
        self.resize = resize
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.seen = 0
        self.saved = 0

    def __call__(self, rgb: np.ndarray) -> None:
        """Offer one RGB frame; every ``every``-th is written."""
        import cv2  # OpenCV and the runtime load when a frame is recorded, not on import

        from edge.runtime.preprocess import fit_frame

        self.seen += 1
        if (self.seen - 1) % self.every:
            return
        pixels = fit_frame(rgb, self.size, self.resize)
        path = self.target / f"{self.stamp}-{self.seen - 1:06d}.png"
        ok, data = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        if not ok:
            raise SinkError(f"{path}: OpenCV could not encode the frame")
        _write_new(path, data.tobytes())
        self.saved += 1


def _write_new(path: Path, data: bytes) -> None:
    """Write a new file whole (edge.outputs), so a reader never sees half an image."""
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise SinkError(f"{path}: cannot save the recorded frame: {e.strerror or e}") from e
