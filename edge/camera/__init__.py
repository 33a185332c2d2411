"""Frame sources behind one interface, chosen by the ``--camera`` value and the board profile.

Backends import their hardware packages only when chosen, so ``import edge.camera`` works on a
machine with neither picamera2 nor a camera.

=====================  ====================================================================
``--camera``           source
=====================  ====================================================================
``N``                  CSI camera N through picamera2 when the board profile says
                       ``camera = "picamera2"``, else V4L2/OpenCV device N
``/dev/videoN``        V4L2/OpenCV device
``rtsp://``, ...       network stream through OpenCV/FFmpeg, with open and read timeouts
a video file           OpenCV/FFmpeg; the run ends at its end unless ``loop``
an image file          that one image (its header checked like a folder's images)
a folder               every image in it, in name order
``demo``               the synthetic scene of the bundled demo model (frames carry the truth)
=====================  ====================================================================
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS, BoardProfile
from edge.bounded_read import not_regular_reason
from edge.camera.base import Frame, FrameSource
from edge.errors import CameraError

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
CAMERA_HELP = ("N (camera number), /dev/videoN, a video file, a folder of images, "
               "rtsp:// or http:// stream, or demo")


def source_kind(spec: str, camera_backend: str = "opencv") -> str:
    """Which backend serves ``spec``: picamera2, device, stream, file, image, folder or demo.

    Raises:
        CameraError: ``spec`` is none of the accepted forms.
    """
    if spec == "demo":
        return "demo"
    if spec.isdigit():
        return "picamera2" if camera_backend == "picamera2" else "device"
    if spec.startswith("/dev/"):
        _check_video_device(spec)
        return "device"
    match = _URL.match(spec)
    if match:
        if match.group(1).lower() not in STREAM_SCHEMES:
            raise CameraError(f"--camera {spec}: unsupported scheme {match.group(1)!r}; use one "
                              f"of {', '.join(STREAM_SCHEMES)}")
        return "stream"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if path.is_file():
        from edge.camera.files import IMAGE_SUFFIXES

        return "image" if path.suffix.lower() in IMAGE_SUFFIXES else "file"
    if path.exists():
        reason = not_regular_reason(path.stat().st_mode)
        raise CameraError(f"--camera {spec}: {reason}; --camera takes {CAMERA_HELP}")
    raise CameraError(f"--camera {spec}: no such camera, file or folder; --camera takes "
                      f"{CAMERA_HELP}")


V4L2_MAJOR = 81  # Linux's character-device major number of video4linux


def _check_video_device(path: str) -> None:
    """Refuse a path that exists but is no video4linux device (``/dev/zero``, a disk, a FIFO).

    OpenCV would hand such a file to FFmpeg, which reads ``/dev/zero`` or waits on a FIFO for
    good. A path that does not exist (yet) is left to the open, whose message says what to check.
    """
    try:
        info = os.stat(path)
    except OSError:
        return
    if not stat.S_ISCHR(info.st_mode) or os.major(info.st_rdev) != V4L2_MAJOR:
        raise CameraError(f"--camera {path}: not a video device (V4L2, /dev/videoN); --camera "
                          f"takes {CAMERA_HELP}")


def open_source(spec: str, *, board: BoardProfile | None = None,
                input_size: tuple[int, int] = (224, 224), resize: str = "squash",
                loop: bool = False, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0,
                seed: int = 0, max_image_pixels: int | None = None,
                labels: Sequence[str] | None = None, realtime: bool = False) -> FrameSource:
    """The frame source ``spec`` names; not yet opened: use it as a context manager.

    Args:
        spec: the ``--camera`` value.
        board: profile deciding what a bare camera number means (and the lores formats).
        input_size: model input (width, height); the picamera2 ISP scales to it.
        resize: ``squash`` or ``crop``, for backends that scale in hardware.
        loop: restart video files and image folders at their end.
        open_timeout_s: stream open timeout.
        read_timeout_s: stream, device and CSI camera read timeout.
        seed: demo scene seed.
        max_image_pixels: images of a folder claiming more pixels are skipped (default: the
            board's limit).
        labels: the model's labels; the demo scene gives its ground truth only when they
            are the scene's own (see :func:`edge.camera.demo.truth_mismatch`).
        realtime: play a video file at its own pace (by its timestamps), not as fast as it
            decodes; live sources are paced by their camera anyway, images have no time.

    Raises:
        CameraError: ``spec`` names nothing usable.
    """
    runtime = board.runtime if board is not None else None
    kind = source_kind(spec, runtime.camera if runtime is not None else "opencv")
    if kind == "demo":
        from edge.camera.demo import DemoSource

        return DemoSource(seed=seed, labels=labels)
    if kind in ("folder", "image"):
        from edge.camera.files import ImageFolderSource

        limit = max_image_pixels or (runtime.max_image_pixels if runtime is not None
                                     else DEFAULT_MAX_IMAGE_PIXELS)
        return ImageFolderSource(spec, loop=loop, max_pixels=limit)
    if kind == "picamera2":
        from edge.camera.picamera2 import Picamera2Source

        formats = runtime.lores_formats if runtime is not None else ()
        return Picamera2Source(int(spec), input_size=input_size, lores_formats=formats,
                               resize=resize, read_timeout_s=read_timeout_s)
    from edge.camera.opencv import Kind, OpenCVSource

    target: int | str = int(spec) if spec.isdigit() else spec
    return OpenCVSource(target, cast(Kind, kind), loop=loop, open_timeout_s=open_timeout_s,
                        read_timeout_s=read_timeout_s, realtime=realtime)


__all__ = ["CAMERA_HELP", "Frame", "FrameSource", "open_source", "source_kind"]
