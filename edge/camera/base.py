"""The frame source interface every camera backend implements, and the frame it returns."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    Attributes:
        rgb: uint8 array of shape (height, width, 3) in RGB order.
        timestamp_ns: ``time.monotonic_ns()`` taken as the frame left the camera.
        index: position of the frame in its source (counts from 0, never resets on reopen).
        truth: ground-truth class index when the source knows it (the demo scene), else None.
        source: what the frame came from, as the user named it: the camera number or device,
            the stream URL, the video file, the folder, ``demo``.
        file: the image file of a folder's frame, else None (other frames are named by
            ``source`` and ``index``).
    """

    rgb: np.ndarray
    timestamp_ns: int = field(default_factory=time.monotonic_ns)
    index: int = 0
    truth: int | None = None
    source: str = ""
    file: str | None = None


class FrameSource(ABC):
    """A camera, stream, file or synthetic scene that yields RGB frames.

    Use it as a context manager: ``__enter__`` opens, ``__exit__`` closes. ``read()`` returns the
    next frame, or None once a finite source (a video file or image folder without looping) has
    no more frames. A live source never returns None: a read that fails raises
    :class:`~edge.errors.CameraError` and the caller may :meth:`reopen` it.

    Attributes:
        name: what the user asked for, for messages (``"/dev/video0"``, ``"demo"``).
        live: True for cameras and network streams, whose frames go stale when not taken at
            once; False for files and synthetic scenes, which wait for the reader.
        paced: a finite source that delivers each frame at its own time (a video file with
            ``realtime``): handed over like a live one's, the newest replacing a stale one.
    """

    name: str = "camera"
    live: bool = True
    paced: bool = False

    def __init__(self) -> None:
        self._next_index = 0

    @abstractmethod
    def open(self) -> None:
        """Acquire the device or file.

        Raises:
            CameraError: it cannot be opened (the message says what to check).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    @abstractmethod
    def read(self) -> Frame | None:
        """Return the next frame, or None at the end of a finite source.

        Raises:
            CameraError: the frame could not be read (device gone, timeout, stream ended).
        """

    def reopen(self) -> None:
        """Close and open again, e.g. after the device re-enumerated."""
        self.close()
        self.open()

    def interrupt(self) -> None:
        """Ask a ``read()`` blocked in another thread to return soon (best effort).

        Backends whose reads already time out leave this as a no-op.
        """
        return

    def _frame(self, rgb: np.ndarray, timestamp_ns: int, truth: int | None = None,
               file: str | None = None) -> Frame:
        """Wrap ``rgb`` into a :class:`Frame` with the next index, named by this source."""
        frame = Frame(rgb, timestamp_ns, self._next_index, truth, self.name, file)
        self._next_index += 1
        return frame

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
