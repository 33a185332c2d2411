"""Frame sources on real parts: video files written with OpenCV VideoWriter, image folders,
the demo scene, and streams and devices that do not exist."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from edge.backoff import Backoff
from edge.boards import get_board
from edge.camera import Frame, open_source, source_kind
from edge.camera.opencv import OpenCVSource
from edge.camera.picamera2 import Picamera2Source
from edge.errors import CameraError, EdgeError
from edge.pipeline.capture import FrameGrabber
from tests.conftest import ROOT

cv2 = pytest.importorskip("cv2")

# Colours far apart in RGB, so lossy video keeps them distinguishable.
RGB_COLOURS = ((230, 20, 20), (20, 230, 20), (20, 20, 230))
FRAMES_EACH = 4


@pytest.fixture(scope="module")
def colour_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 640x480 MJPG video: 4 red frames, 4 green, 4 blue."""
    path = tmp_path_factory.mktemp("video") / "colours.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    assert writer.isOpened()
    for rgb in RGB_COLOURS:
        bgr = np.full((480, 640, 3), rgb[::-1], np.uint8)
        for _ in range(FRAMES_EACH):
            writer.write(bgr)
    writer.release()
    return path


def mean_rgb(frame) -> tuple[int, ...]:
    return tuple(int(v) for v in frame.rgb.reshape(-1, 3).mean(axis=0).round())


def assert_close(got: tuple[int, ...], want: tuple[int, ...], tol: int = 12) -> None:
    assert all(abs(g - w) <= tol for g, w in zip(got, want, strict=True)), (got, want)


@pytest.mark.parametrize(("spec", "backend", "kind"), [
    ("demo", "opencv", "demo"),
    ("0", "opencv", "device"),
    ("0", "picamera2", "picamera2"),
    ("/dev/video2", "picamera2", "device"),
    ("rtsp://cam.local:554/stream", "opencv", "stream"),
    ("http://cam.local/video.mjpg", "opencv", "stream"),
])
def test_source_kind(spec: str, backend: str, kind: str) -> None:
    assert source_kind(spec, backend) == kind


def test_source_kind_of_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert source_kind(str(tmp_path)) == "folder"
    assert source_kind(str(tmp_path / "clip.mp4")) == "file"
    with pytest.raises(CameraError, match="no such camera, file or folder"):
        source_kind(str(tmp_path / "missing.mp4"))
    with pytest.raises(CameraError, match="unsupported scheme 'ftp'"):
        source_kind("ftp://host/x")


def test_board_profile_decides_what_a_camera_number_means() -> None:
    pi = open_source("0", board=get_board("rpi4"), input_size=(224, 224))
    host = open_source("0", board=get_board("host"))
    pi5 = open_source("0", board=get_board("rpi5"), input_size=(224, 224))
    assert isinstance(pi, Picamera2Source) and pi.lores_format == "YUV420"
    assert isinstance(pi5, Picamera2Source) and pi5.lores_format == "BGR888"
    assert isinstance(host, OpenCVSource) and host.live and host.kind == "device"


def test_video_file_frames_are_rgb_in_order_then_end(colour_video: Path) -> None:
    with open_source(str(colour_video)) as source:
        assert not source.live
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    assert len(frames) == FRAMES_EACH * len(RGB_COLOURS)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(f.rgb.shape == (480, 640, 3) and f.rgb.dtype == np.uint8 for f in frames)
    stamps = [f.timestamp_ns for f in frames]
    assert stamps == sorted(stamps) and stamps[0] <= time.monotonic_ns()
    for k, rgb in enumerate(RGB_COLOURS):
        assert_close(mean_rgb(frames[k * FRAMES_EACH]), rgb)


def test_video_file_loops_on_request(colour_video: Path) -> None:
    total = FRAMES_EACH * len(RGB_COLOURS)
    with open_source(str(colour_video), loop=True) as source:
        frames = [source.read() for _ in range(total + 2)]
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(total + 2))  # type: ignore[union-attr]
    assert_close(mean_rgb(frames[total]), RGB_COLOURS[0])


def test_image_folder_in_name_order_and_bad_image_is_a_camera_error(tmp_path: Path) -> None:
    for name, rgb in zip(("b.png", "a.png", "c.bmp"), RGB_COLOURS, strict=True):
        cv2.imwrite(str(tmp_path / name), np.full((30, 40, 3), rgb[::-1], np.uint8))
    (tmp_path / "d.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(str(tmp_path)) as source:
        got = [mean_rgb(source.read()) for _ in range(3)]  # type: ignore[arg-type]
        with pytest.raises(CameraError, match=r"d\.jpg"):
            source.read()
        assert source.read() is None
    assert got == [RGB_COLOURS[1], RGB_COLOURS[0], RGB_COLOURS[2]]


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match="no images"):
        open_source(str(tmp_path)).open()


def test_demo_frames_carry_ground_truth() -> None:
    pytest.importorskip("edge.demo.scene")
    from edge.demo.scene import LABELS

    with open_source("demo") as source:
        frames = [source.read() for _ in range(40)]
    assert all(f is not None and f.rgb.shape == (240, 320, 3) for f in frames)
    truths = [f.truth for f in frames]  # type: ignore[union-attr]
    assert all(t in range(len(LABELS)) for t in truths)
    assert len(set(truths)) >= 2  # the object changes every 15 frames
    with open_source("demo") as again:  # the same seed shows the same objects
        assert [again.read().truth for _ in range(40)] == truths  # type: ignore[union-attr]


def test_unreachable_stream_fails_within_its_open_timeout() -> None:
    source = open_source("rtsp://127.0.0.1:9/none", open_timeout_s=2.0)
    start = time.monotonic()
    with pytest.raises(CameraError, match="cannot open stream"):
        source.open()
    assert time.monotonic() - start < 15


def test_missing_device_is_a_camera_error() -> None:
    with pytest.raises(CameraError, match="cannot open camera"):
        OpenCVSource("/dev/video-edge-missing", "device").open()


def test_camera_errors_are_edge_errors_and_os_errors() -> None:
    assert issubclass(CameraError, EdgeError) and issubclass(CameraError, OSError)


def test_importing_the_registry_imports_no_camera_package() -> None:
    code = ("import sys, edge.camera, edge.pipeline.runner, edge.cli.run; "
            "bad = [m for m in ('cv2', 'picamera2', 'libcamera', 'ai_edge_litert') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, env={"PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def http_server(colour_video: Path) -> Iterator[str]:
    """A real HTTP server in a thread, serving the video's folder."""
    handler = functools.partial(QuietHandler, directory=str(colour_video.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{colour_video.name}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_end_of_a_live_stream_is_reopened_and_counted(http_server: str) -> None:
    total = FRAMES_EACH * len(RGB_COLOURS)
    source = open_source(http_server, open_timeout_s=5, read_timeout_s=5)
    assert isinstance(source, OpenCVSource) and source.kind == "stream" and source.live
    with source, FrameGrabber(source, backoff=Backoff(0.01, 0.05)) as grabber:
        frames: list[Frame] = []
        deadline = time.monotonic() + 60
        while len(frames) < total + 3 and time.monotonic() < deadline:
            frame = grabber.get(timeout=1)  # live: a slow reader may miss frames; fine
            if frame is not None:
                frames.append(frame)
    assert len(frames) == total + 3
    assert grabber.counters.reconnects >= 1
    assert grabber.counters.camera_errors >= 1
