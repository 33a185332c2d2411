"""The picamera2 backend against a thin stand-in of picamera2 and libcamera.

picamera2 and libcamera cannot exist on this machine. The stand-in below has the API surface the
backend calls, installed into ``sys.modules`` by each test, and emulates what matters of the
ISPs: the Pi 4's lores stream takes YUV420 only, with rows padded to a stride; the Pi 5's also
takes BGR888 (bytes in R, G, B order). The real picamera2 calls stay in the shipped code.
"""

from __future__ import annotations

import sys
import types
from typing import Any, ClassVar

import numpy as np
import pytest

from edge.backoff import Backoff
from edge.boards import get_board
from edge.camera import open_source
from edge.camera.picamera2 import Picamera2Source, centre_crop, yuv420_to_rgb
from edge.errors import BackendError, CameraError
from edge.pipeline.capture import FrameGrabber

cv2 = pytest.importorskip("cv2")

SENSOR_CROP = (0, 0, 3280, 2464)  # IMX219's ScalerCropMaximum
GARBAGE = 0xEE


def scene(width: int, height: int) -> np.ndarray:
    """A smooth RGB test picture (YUV420 keeps smooth pictures nearly intact)."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    rgb = np.stack([200 * x + 30 + 0 * y, 200 * y + 30 + 0 * x, 120 + 60 * x * y], axis=-1)
    return rgb.round().astype(np.uint8)


def padded_i420(rgb: np.ndarray, stride: int) -> np.ndarray:
    """What picamera2 returns for a YUV420 lores stream: (h * 3 / 2, stride), rows padded."""
    height, width = rgb.shape[:2]
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    y = i420[:width * height].reshape(height, width)
    u = i420[width * height:width * height * 5 // 4].reshape(height // 2, width // 2)
    v = i420[width * height * 5 // 4:].reshape(height // 2, width // 2)

    def pad(plane: np.ndarray, row: int) -> np.ndarray:
        out = np.full((plane.shape[0], row), GARBAGE, np.uint8)
        out[:, :plane.shape[1]] = plane
        return out.reshape(-1)

    flat = np.concatenate([pad(y, stride), pad(u, stride // 2), pad(v, stride // 2)])
    return flat.reshape(height * 3 // 2, stride)


class StandInPicamera2:
    """The part of ``picamera2.Picamera2`` the backend uses."""

    cameras: ClassVar[list[dict[str, Any]]] = [{"Model": "imx219", "Num": 0}]
    lores_formats: tuple[str, ...] = ("YUV420",)
    instances: ClassVar[list[StandInPicamera2]] = []
    timeouts_left = 0  # reads that time out (a libcamera "frontend timeout")

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return StandInPicamera2.cameras

    def __init__(self, camera_num: int = 0) -> None:
        self.camera_num = camera_num
        self.camera_properties = {"ScalerCropMaximum": SENSOR_CROP,
                                  "PixelArraySize": SENSOR_CROP[2:]}
        self.config: dict[str, Any] | None = None
        self.started = self.closed = False
        self.frames = 0
        StandInPicamera2.instances.append(self)

    def create_preview_configuration(self, main: dict, lores: dict, buffer_count: int,
                                     queue: bool, colour_space: Any, controls: dict
                                     ) -> dict[str, Any]:
        return {"main": dict(main), "lores": dict(lores), "buffer_count": buffer_count,
                "queue": queue, "colour_space": colour_space, "controls": dict(controls)}

    def configure(self, config: dict[str, Any]) -> None:
        width, height = config["lores"]["size"]
        fmt = config["lores"]["format"]
        if fmt not in self.lores_formats:
            raise RuntimeError(f"lores format {fmt} not supported by this ISP")
        if width % 2 or height % 2:
            raise RuntimeError("lores dimensions must be even")
        main_w, main_h = config["main"]["size"]
        if width > main_w or height > main_h:
            raise RuntimeError("lores must not be larger than main")
        self.config = config

    def stream_configuration(self, name: str) -> dict[str, Any]:
        assert self.config is not None
        width, height = self.config[name]["size"]
        fmt = self.config[name]["format"]
        stride = (width + 63) // 64 * 64 if fmt == "YUV420" else width * 3
        return {"size": (width, height), "format": fmt, "stride": stride}

    def start(self) -> None:
        assert self.config is not None
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def capture_array(self, name: str = "main", wait: Any = None) -> dict[str, Any]:
        assert self.started and not self.closed and wait is False
        return {"name": name}

    def wait(self, job: dict[str, Any], timeout: float | None = None) -> np.ndarray:
        assert timeout is not None, "the backend must never wait forever"
        if StandInPicamera2.timeouts_left:
            StandInPicamera2.timeouts_left -= 1
            raise TimeoutError
        assert self.config is not None
        stream = self.stream_configuration(job["name"])
        width, height = stream["size"]
        rgb = scene(width, height)
        self.frames += 1
        if stream["format"] == "YUV420":
            return padded_i420(rgb, stream["stride"])
        return rgb.copy()  # BGR888: R, G, B bytes, shape (h, w, 3)


class ColorSpace:
    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def Smpte170m() -> ColorSpace:  # noqa: N802 (libcamera's name)
        return ColorSpace("Smpte170m")


@pytest.fixture
def picamera2(monkeypatch: pytest.MonkeyPatch) -> type[StandInPicamera2]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = StandInPicamera2  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.ColorSpace = ColorSpace  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    monkeypatch.setattr(StandInPicamera2, "instances", [])
    monkeypatch.setattr(StandInPicamera2, "timeouts_left", 0)
    monkeypatch.setattr(StandInPicamera2, "lores_formats", ("YUV420",))
    return StandInPicamera2


def test_pi4_lores_yuv420_is_trimmed_and_converted(picamera2: type[StandInPicamera2]) -> None:
    with open_source("0", board=get_board("rpi4"), input_size=(224, 224)) as source:
        frame = source.read()
    camera = picamera2.instances[0]
    assert camera.config is not None
    assert camera.config["lores"] == {"size": (224, 224), "format": "YUV420"}
    assert camera.stream_configuration("lores")["stride"] == 256  # padded rows
    assert camera.config["main"]["format"] == "XRGB8888"
    assert camera.config["queue"] is False
    assert camera.config["colour_space"].name == "Smpte170m"
    assert camera.config["controls"] == {}  # squash: the ISP scales the full field of view
    assert camera.closed
    assert frame is not None and frame.rgb.shape == (224, 224, 3)
    error = np.abs(frame.rgb.astype(int) - scene(224, 224).astype(int))
    assert error.mean() < 2.0 and error.max() <= 12  # YUV420 round trip, no stride garbage


def test_pi5_lores_bgr888_holds_rgb_bytes(picamera2: type[StandInPicamera2]) -> None:
    picamera2.lores_formats = ("YUV420", "RGB888", "BGR888")
    with open_source("0", board=get_board("rpi5"), input_size=(224, 224)) as source:
        frame = source.read()
    assert picamera2.instances[0].config["lores"]["format"] == "BGR888"  # type: ignore[index]
    assert frame is not None and np.array_equal(frame.rgb, scene(224, 224))
    assert frame.rgb.flags.c_contiguous


def test_pi4_profile_never_asks_for_rgb_lores(picamera2: type[StandInPicamera2]) -> None:
    source = Picamera2Source(0, input_size=(224, 224), lores_formats=("YUV420",))
    assert source.lores_format == "YUV420"


def test_odd_model_size_gets_even_lores_then_exact_frames(
        picamera2: type[StandInPicamera2]) -> None:
    with Picamera2Source(0, input_size=(97, 95), lores_formats=("YUV420",)) as source:
        frame = source.read()
    assert picamera2.instances[0].config["lores"]["size"] == (98, 96)  # type: ignore[index]
    assert frame is not None and frame.rgb.shape == (95, 97, 3)


def test_crop_sets_scaler_crop_to_the_centred_model_aspect(
        picamera2: type[StandInPicamera2]) -> None:
    with Picamera2Source(0, input_size=(224, 224), resize="crop") as source:
        source.read()
    controls = picamera2.instances[0].config["controls"]  # type: ignore[index]
    assert controls == {"ScalerCrop": (408, 0, 2464, 2464)}
    assert centre_crop((0, 0, 1000, 200), (2, 1)) == (300, 0, 400, 200)


def test_frontend_timeout_is_a_camera_error_and_the_run_reopens(
        picamera2: type[StandInPicamera2]) -> None:
    picamera2.timeouts_left = 1
    source = Picamera2Source(0, input_size=(64, 64), read_timeout_s=0.5)
    with pytest.raises(CameraError, match="frontend timeout"):
        with source:
            source.read()
    picamera2.timeouts_left = 1
    with source, FrameGrabber(source, backoff=Backoff(0.001, 0.01)) as grabber:
        frames = [grabber.get(timeout=5) for _ in range(3)]
    assert all(f is not None for f in frames)
    assert grabber.counters.reconnects == 1 and grabber.counters.camera_errors == 1
    assert picamera2.instances[-2].closed  # the failed camera was released
    indices = [f.index for f in frames]  # type: ignore[union-attr]
    assert indices == sorted(set(indices))  # live: newest frames, in order


def test_no_csi_camera_says_what_to_check(picamera2: type[StandInPicamera2],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StandInPicamera2, "cameras", [])
    with pytest.raises(CameraError, match="ribbon cable"):
        Picamera2Source(0, input_size=(224, 224)).open()


def test_missing_picamera2_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(BackendError, match="apt install python3-picamera2") as info:
        Picamera2Source(0, input_size=(224, 224)).open()
    assert isinstance(info.value.__cause__, ImportError)


def test_yuv420_without_padding_matches_opencv_exactly() -> None:
    rgb = scene(64, 48)
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    expected = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    assert np.array_equal(yuv420_to_rgb(i420, (64, 48), 64), expected)
    assert np.array_equal(yuv420_to_rgb(padded_i420(rgb, 128), (64, 48), 128), expected)
