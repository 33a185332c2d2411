"""``edge-run --record DIR [--label NAME]``: keep camera frames as training images.

With ``--label``, frames are saved as the model sees them: after the board's ISP scaling
(picamera2 delivers the lores stream at the model's input size) and the runtime's own
crop/resize, before quantization, as PNG (lossless) in ``DIR/NAME/``, the layout
``edge-model train`` reads for classifiers. ``--record-size WxH`` records at another size (the
size the model you will train takes), so training never upscales small recordings.

Without ``--label``, whole frames go to ``DIR/images/`` at the camera's own size (or
``--record-size``) for labelling boxes in Label Studio, CVAT or Roboflow, which write the
YOLO layout's ``labels/`` beside them (``edge-model train --task detect``).

File names carry the start time of the run and the frame index, so later runs add images and
never replace earlier ones (which keeps the hash split of old images stable). A frame that
cannot be saved (full disk) is counted and said once; the labels keep flowing.
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
    label: str | None = None
    every: int = 1
    size: tuple[int, int] | None = None


UNLABELLED_FOLDER = "images"


def check_label(label: str) -> str:
    """A class name usable as one folder name, or :class:`SinkError`."""
    if not _LABEL.match(label) or label in (".", "..") or label.startswith("."):
        raise SinkError(f"--label {label!r} must be a plain folder name (no '/', not hidden), "
                        "e.g. --label empty")
    return label


class FrameRecorder:
    """Saves every ``every``-th frame it is given, resized as the model sees it.

    Args:
        options: folder, label, interval and size.
        size: model input (width, height): the recording size of labelled frames unless
            ``options.size`` asks for another.
        resize: ``squash`` or ``crop``, as the classifier does.

    Raises:
        SinkError: the label is not a folder name or the folder cannot be created.
    """

    def __init__(self, options: RecordOptions, size: tuple[int, int], resize: str = "squash"):
        if options.every < 1:
            raise SinkError(f"--every (={options.every}) must be >= 1")
        if options.size is not None and min(options.size) < 1:
            raise SinkError(f"--record-size {options.size[0]}x{options.size[1]} must be at "
                            "least 1x1")
        labelled = options.label is not None
        folder = check_label(options.label) if options.label is not None else UNLABELLED_FOLDER
        self.target = Path(options.folder) / folder
        try:
            self.target.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"{self.target}: cannot create the recording folder: "
                            f"{e.strerror or e}") from e
        self.every = options.every
        self.size: tuple[int, int] | None = options.size or (size if labelled else None)
        self.resize = resize
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.seen = 0
        self.saved = 0
        self.failed = 0

    def describe(self) -> str:
        """Where, how often and at what size frames are recorded, for the start line."""
        every = "every frame" if self.every == 1 else f"every {_ordinal(self.every)} frame"
        size = (f"at {self.size[0]}x{self.size[1]} ({self.resize})" if self.size is not None
                else "at the camera's size")
        return f"recording {every} to {self.target}/ {size}"

    def counters(self) -> dict[str, int]:
        """Frames saved and frames that could not be saved, for the status line."""
        return {"saved": self.saved, "failed": self.failed}

    def __call__(self, rgb: np.ndarray) -> None:
        """Offer one RGB frame; every ``every``-th is written."""
        import cv2  # OpenCV and the runtime load when a frame is recorded, not on import

        from edge.runtime.preprocess import fit_frame

        self.seen += 1
        if (self.seen - 1) % self.every:
            return
        pixels = fit_frame(rgb, self.size, self.resize) if self.size is not None else rgb
        path = self.target / f"{self.stamp}-{self.seen - 1:06d}.png"
        ok, data = cv2.imencode(".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        try:
            if not ok:
                raise OSError("OpenCV could not encode the frame")
            atomic_write_bytes(path, data.tobytes())  # whole or not at all
        except OSError as e:
            self.failed += 1
            if self.failed == 1:
                log.warning("%s: cannot save the recorded frame (%s); counting the frames not "
                            "saved, labelling goes on", path, e.strerror or e)
            return
        self.saved += 1


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
