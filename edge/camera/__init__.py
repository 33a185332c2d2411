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
a folder               every image in it, in name order
``demo``               the synthetic scene of the bundled demo model (frames carry the truth)
=====================  ====================================================================
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from edge.boards import BoardProfile
from edge.camera.base import Frame, FrameSource
from edge.errors import CameraError

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
CAMERA_HELP = ("N (camera number), /dev/videoN, a video file, a folder of images, "
               "rtsp:// or http:// stream, or demo")


def source_kind(spec: str, camera_backend: str = "opencv") -> str:
    """Which backend serves ``spec``: picamera2, device, stream, file, folder or demo.

    Raises:
        CameraError: ``spec`` is none of the accepted forms.
    """
    if spec == "demo":
        return "demo"
    if spec.isdigit():
        return "picamera2" if camera_backend == "picamera2" else "device"
    if spec.startswith("/dev/"):
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
        return "file"
    raise CameraError(f"--camera {spec}: no such camera, file or folder; --camera takes "
                      f"{CAMERA_HELP}")


def open_source(spec: str, *, board: BoardProfile | None = None,
                input_size: tuple[int, int] = (224, 224), resize: str = "squash",
                loop: bool = False, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0,
                seed: int = 0, labels: Sequence[str] | None = None) -> FrameSource:
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
        labels: the model's labels; the demo scene gives its ground truth only when they
            are the scene's own (see :func:`edge.camera.demo.truth_mismatch`).

    Raises:
        CameraError: ``spec`` names nothing usable.
    """
    runtime = board.runtime if board is not None else None
    kind = source_kind(spec, runtime.camera if runtime is not None else "opencv")
    if kind == "demo":
        from edge.camera.demo import DemoSource

        return DemoSource(seed=seed, labels=labels)
    if kind == "folder":
        from edge.camera.files import ImageFolderSource

        return ImageFolderSource(spec, loop=loop)
    if kind == "picamera2":
        from edge.camera.picamera2 import Picamera2Source

        formats = runtime.lores_formats if runtime is not None else ()
        return Picamera2Source(int(spec), input_size=input_size, lores_formats=formats,
                               resize=resize, read_timeout_s=read_timeout_s)
    from edge.camera.opencv import Kind, OpenCVSource

    target: int | str = int(spec) if spec.isdigit() else spec
    return OpenCVSource(target, cast(Kind, kind), loop=loop, open_timeout_s=open_timeout_s,
                        read_timeout_s=read_timeout_s)


__all__ = ["CAMERA_HELP", "Frame", "FrameSource", "open_source", "source_kind"]
