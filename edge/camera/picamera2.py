"""The Raspberry Pi CSI camera through picamera2/libcamera; the only module importing them.

The ISP does the scaling: a second, low-resolution ("lores") stream is configured at the model's
input size, so the CPU never resizes a full frame. What the lores stream may carry depends on
the ISP, which the board profile records in ``lores_formats``:

* Pi 4 (VC4 ISP): only YUV420. The planes arrive padded to a stride; the padding is trimmed
  and the frame converted to RGB with BT.601 limited-range coefficients, which is why the
  stream is configured with the matching ``Smpte170m`` colour space.
* Pi 5 (PiSP): RGB lores is allowed. libcamera's ``BGR888`` stores bytes in R, G, B order, so
  it is RGB as it stands (``RGB888`` would hold B, G, R).

Squash or crop is decided here, on purpose: ``squash`` (the default, as Coral's examples and our
preprocessing do) lets the ISP scale the full field of view to the model size; ``crop`` sets
``ScalerCrop`` to the centred sensor window with the model's aspect ratio, which applies to the
main stream too.
"""

from __future__ import annotations

import logging
import site
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.camera.base import Frame, FrameSource
from edge.errors import BackendError, CameraError

log = logging.getLogger(__name__)

APT_PACKAGE = "python3-picamera2"
VENV_FLAG = "--system-site-packages"
INSTALL_HINT = (f"on Raspberry Pi OS: sudo apt install {APT_PACKAGE} and create the venv with "
                f"python3 -m venv {VENV_FLAG} (elsewhere: pip install 'edge-labels[rpi]')")
# Preference order for the lores stream; YUV420 works on every Pi.
LORES_PREFERENCE = ("BGR888", "RGB888", "YUV420")


def _import() -> tuple[Any, Any]:
    """Import picamera2 and libcamera, or raise :class:`BackendError` saying how to install."""
    try:
        import libcamera
        from picamera2 import Picamera2
    except (ImportError, ValueError) as e:  # ValueError: a numpy ABI mismatch in its imports
        raise BackendError(install_advice(e, _hiding_venv(), _system_sites())) from e
    return Picamera2, libcamera


def install_advice(error: BaseException, hiding_venv: Path | None,
                   system_sites: list[Path]) -> str:
    """One line on why picamera2 cannot be imported and what to do.

    Args:
        error: what the import raised.
        hiding_venv: the venv this Python runs in when it hides the system's site-packages.
        system_sites: the system Python's site-packages folders.
    """
    missing = isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in {
        "picamera2", "libcamera"}
    if not missing:
        return f"picamera2 cannot be imported ({error}); {INSTALL_HINT}"
    installed = [site for site in system_sites if (site / "picamera2").is_dir()]
    if hiding_venv is not None and installed:
        return (f"picamera2 is installed for the system Python ({installed[0]}) but the venv "
                f"{hiding_venv} cannot see it: recreate it with python3 -m venv {VENV_FLAG} "
                f"{hiding_venv}")
    return f"picamera2 is not installed; {INSTALL_HINT}"


def _hiding_venv() -> Path | None:
    """This Python's venv when it was made without ``--system-site-packages``."""
    if sys.prefix == sys.base_prefix:
        return None
    config = Path(sys.prefix) / "pyvenv.cfg"
    try:
        lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "include-system-site-packages":
            return None if value.strip().lower() == "true" else Path(sys.prefix)
    return Path(sys.prefix)


def _system_sites() -> list[Path]:
    """The base (system) Python's site-packages folders."""
    return [Path(p) for p in site.getsitepackages([sys.base_prefix])]


def choose_lores_format(allowed: tuple[str, ...] | list[str]) -> str:
    """The best lores pixel format among those the board's ISP allows (YUV420 if none listed)."""
    for fmt in LORES_PREFERENCE:
        if fmt in allowed:
            return fmt
    return "YUV420"


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` rounded up to even dimensions, as the ISP requires for YUV420 planes."""
    return (size[0] + size[0] % 2, size[1] + size[1] % 2)


def centre_crop(sensor: tuple[int, int, int, int], size: tuple[int, int]
                ) -> tuple[int, int, int, int]:
    """The largest centred (x, y, w, h) window of ``sensor`` with the aspect ratio of ``size``."""
    x, y, width, height = sensor
    aspect = size[0] / size[1]
    crop_w, crop_h = (width, round(width / aspect))
    if crop_h > height:
        crop_w, crop_h = round(height * aspect), height
    return (x + (width - crop_w) // 2, y + (height - crop_h) // 2, crop_w, crop_h)


def yuv420_to_rgb(buffer: np.ndarray, size: tuple[int, int], stride: int) -> np.ndarray:
    """Convert a planar YUV420 (I420) buffer whose rows are ``stride`` bytes to RGB (h, w, 3).

    picamera2 hands the lores YUV420 stream over as an array of shape (h * 3 / 2, stride): the Y
    plane with ``stride``-byte rows, then the U and V planes with ``stride / 2``-byte rows. The
    padding at the end of each row is trimmed plane by plane before conversion.
    """
    import cv2

    width, height = size
    flat = np.ascontiguousarray(buffer).reshape(-1)
    chroma_stride, chroma_rows = stride // 2, height // 2
    y_end = stride * height
    plane = chroma_stride * chroma_rows
    if flat.size < y_end + 2 * plane:
        raise CameraError(f"YUV420 buffer of {flat.size} bytes is too small for {width}x{height} "
                          f"with stride {stride}")
    y = flat[:y_end].reshape(height, stride)[:, :width]
    u = flat[y_end:y_end + plane].reshape(chroma_rows, chroma_stride)[:, :width // 2]
    v = flat[y_end + plane:y_end + 2 * plane].reshape(chroma_rows, chroma_stride)[:, :width // 2]
    i420 = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)])
    return cv2.cvtColor(i420.reshape(height * 3 // 2, width), cv2.COLOR_YUV2RGB_I420)


def lores_to_rgb(array: np.ndarray, fmt: str, size: tuple[int, int], stride: int) -> np.ndarray:
    """A lores array as captured by picamera2 -> contiguous RGB uint8 of shape (h, w, 3)."""
    width, height = size
    if fmt == "YUV420":
        return yuv420_to_rgb(array, size, stride)
    if array.ndim == 2:  # rows of ``stride`` bytes, padding included
        array = array[:height, :width * 3].reshape(height, width, 3)
    pixels = array[:height, :width, :3]
    if fmt == "RGB888":  # libcamera RGB888 stores B, G, R
        pixels = pixels[..., ::-1]
    return np.ascontiguousarray(pixels)


class Picamera2Source(FrameSource):
    """A CSI camera whose ISP scales a lores stream to the model's input size.

    Args:
        camera_num: libcamera camera index.
        input_size: model input (width, height); frames come out exactly this size.
        lores_formats: what the board's ISP allows on the lores stream (board profile).
        resize: ``squash`` (full field of view, aspect not kept) or ``crop`` (ScalerCrop to the
            centred window with the model's aspect ratio).
        main_size: size of the main stream, kept for preview or recording.
        read_timeout_s: a frame not delivered in this time raises CameraError (this is what a
            libcamera "frontend timeout" looks like from here).
        buffer_count: request buffers; few, so frames are fresh.
    """

    live = True

    def __init__(self, camera_num: int = 0, *, input_size: tuple[int, int],
                 lores_formats: tuple[str, ...] = (), resize: str = "squash",
                 main_size: tuple[int, int] = (640, 480), read_timeout_s: float = 2.0,
                 buffer_count: int = 4) -> None:
        super().__init__()
        if resize not in ("squash", "crop"):
            raise CameraError(f"resize (={resize!r}) must be squash or crop")
        self.camera_num = camera_num
        self.name = f"picamera2:{camera_num}"
        self.input_size = input_size
        self.lores_size = even_size(input_size)
        self.lores_format = choose_lores_format(lores_formats)
        self.resize = resize
        self.main_size = (max(main_size[0], self.lores_size[0]),
                          max(main_size[1], self.lores_size[1]))
        self.read_timeout_s = read_timeout_s
        self.buffer_count = buffer_count
        self._camera: Any = None
        self._stride = 0

    def open(self) -> None:
        picamera2_cls, libcamera = _import()
        cameras = picamera2_cls.global_camera_info()
        if self.camera_num >= len(cameras):
            raise CameraError(
                f"no CSI camera {self.camera_num} (libcamera sees {len(cameras)}); check the "
                "ribbon cable, camera_auto_detect=1 in /boot/firmware/config.txt and "
                "`rpicam-hello --list-cameras`")
        try:
            camera = picamera2_cls(self.camera_num)
        except (RuntimeError, IndexError) as e:
            raise CameraError(f"cannot acquire CSI camera {self.camera_num}: {e} (is another "
                              "program using it?)") from e
        try:
            self._configure(camera, libcamera)
            camera.start()
        except Exception as e:
            camera.close()
            raise CameraError(f"cannot start CSI camera {self.camera_num}: {e}") from e
        self._camera = camera
        log.debug("CSI camera %d: lores %s %s stride %d, %s", self.camera_num,
                  self.lores_size, self.lores_format, self._stride, self.resize)

    def _configure(self, camera: Any, libcamera: Any) -> None:
        controls: dict[str, Any] = {}
        if self.resize == "crop":
            sensor = camera.camera_properties["ScalerCropMaximum"]
            controls["ScalerCrop"] = centre_crop(tuple(sensor), self.input_size)
        config = camera.create_preview_configuration(
            main={"size": self.main_size, "format": "XRGB8888"},
            lores={"size": self.lores_size, "format": self.lores_format},
            buffer_count=self.buffer_count,
            queue=False,  # wait for a fresh frame rather than take a queued stale one
            colour_space=libcamera.ColorSpace.Smpte170m(),
            controls=controls,
        )
        camera.configure(config)
        self._stride = int(camera.stream_configuration("lores")["stride"])

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.stop()
        finally:
            camera.close()

    def read(self) -> Frame | None:
        if self._camera is None:
            raise CameraError(f"{self.name} is not open")
        try:
            job = self._camera.capture_array("lores", wait=False)
            array = self._camera.wait(job, timeout=self.read_timeout_s)
        except TimeoutError as e:
            raise CameraError(f"CSI camera {self.camera_num} sent no frame within "
                              f"{self.read_timeout_s:g} s (libcamera frontend timeout? check "
                              "the ribbon cable and the power supply)") from e
        except RuntimeError as e:
            raise CameraError(f"CSI camera {self.camera_num} failed: {e}") from e
        stamp = time.monotonic_ns()
        rgb = lores_to_rgb(array, self.lores_format, self.lores_size, self._stride)
        width, height = self.input_size
        if rgb.shape[:2] != (height, width):  # odd model sizes: trim the even lores frame
            rgb = np.ascontiguousarray(rgb[:height, :width])
        return self._frame(rgb, stamp)
