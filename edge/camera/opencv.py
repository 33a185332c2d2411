"""OpenCV capture: V4L2/USB devices, video files and network streams (FFmpeg).

The only module that opens ``cv2.VideoCapture``. Frames leave it in RGB order.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

from edge.camera.base import Frame, FrameSource
from edge.camera.pacing import Pacer
from edge.errors import BackendError, CameraError

log = logging.getLogger(__name__)

Kind = Literal["device", "file", "stream"]


def import_cv2() -> Any:
    """Import OpenCV or raise :class:`BackendError` naming the package to install."""
    try:
        import cv2
    except ImportError as e:
        raise BackendError("OpenCV is not installed; pip install opencv-python-headless") from e
    return cv2


class OpenCVSource(FrameSource):
    """A ``cv2.VideoCapture`` as a :class:`FrameSource`.

    Args:
        target: device index (``0``), device path (``/dev/video0``), file path or stream URL.
        kind: ``device`` and ``stream`` are live (a failed read raises CameraError, the caller
            reopens); ``file`` is finite (the end returns None unless ``loop``).
        loop: start a video file again at its end.
        size: (width, height) to request from a device; None keeps its default.
        open_timeout_s: how long FFmpeg may take to open a stream.
        read_timeout_s: how long a read from a stream or device may block.
        realtime: play a video file at its own pace (by its frames' timestamps) instead of as
            fast as it decodes; no effect on devices and streams, which are live anyway.
    """

    def __init__(self, target: int | str, kind: Kind, *, loop: bool = False,
                 size: tuple[int, int] | None = (640, 480), open_timeout_s: float = 10.0,
                 read_timeout_s: float = 5.0, realtime: bool = False) -> None:
        super().__init__()
        self.target = target
        self.kind = kind
        self.name = str(target)
        self.live = kind != "file"
        self.loop = loop
        self.size = size
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.paced = realtime and kind == "file"
        self._pacer = Pacer()
        self._wake = threading.Event()
        self._cap: Any = None
        self._cv2: Any = None

    def _params(self, cv2: Any) -> list[int]:
        """Open and read timeouts, honoured by the FFmpeg and (recent) V4L2 backends."""
        if self.kind == "file":
            return []
        return [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]

    def open(self) -> None:
        cv2 = self._cv2 = import_cv2()
        api = cv2.CAP_FFMPEG if self.kind == "stream" else cv2.CAP_ANY
        cap = cv2.VideoCapture(self.target, api, self._params(cv2))
        if not cap.isOpened():
            cap.release()
            raise CameraError(self._open_hint())
        if self.kind == "device":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of stale ones
            if self.size is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self._cap = cap
        self._pacer.reset()
        self._wake.clear()
        log.debug("opened %s %s", self.kind, self.name)

    def _open_hint(self) -> str:
        if self.kind == "device":
            return (f"cannot open camera {self.name}; check it is plugged in, not used by "
                    "another program, and that you may read /dev/video* (group 'video')")
        if self.kind == "stream":
            return (f"cannot open stream {self.name} within {self.open_timeout_s:g} s; check "
                    "the URL, the network and that OpenCV was built with FFmpeg")
        return f"cannot decode video file {self.name}; is it a video OpenCV/FFmpeg can read?"

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def read(self) -> Frame | None:
        if self._cap is None:
            raise CameraError(f"{self.name} is not open")
        ok = self._cap.grab()
        if ok and self.paced:
            self._wait_due()
        stamp = time.monotonic_ns()
        if ok:
            ok, bgr = self._cap.retrieve()
        if not ok:
            if self.kind != "file":
                raise CameraError(f"no frame from {self.kind} {self.name} (device gone, read "
                                  f"timeout of {self.read_timeout_s:g} s, or stream ended)")
            if not self.loop or not self._rewind():
                return None
            return self.read()
        return self._frame(self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB), stamp)

    def interrupt(self) -> None:
        """Wake a read waiting for its frame's time (a stop)."""
        self._wake.set()

    def _wait_due(self) -> None:
        """Sleep until the grabbed frame's time comes (``realtime``)."""
        cv2 = self._cv2
        msec = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        pts = self._pacer.timestamp(msec / 1000.0 if msec > 0 else None,
                                    float(self._cap.get(cv2.CAP_PROP_FPS)))
        delay = self._pacer.delay(pts, time.monotonic())
        if delay > 0:
            self._wake.wait(delay)

    def _rewind(self) -> bool:
        """Start the file again; False when it has no frames at all."""
        if self._cap.get(self._cv2.CAP_PROP_POS_FRAMES) <= 0:
            return False
        self._pacer.reset()
        if not self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0):
            self.reopen()
        return True

