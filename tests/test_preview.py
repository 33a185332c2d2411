"""The live preview: pure parts on plain values, then ``edge-run --preview`` opened in a real
headless chromium driven by selenium (the picture moves, the page's label matches the events)."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera.base import Frame, FrameSource
from edge.camera.pacing import Pacer
from edge.cli.run import build_parser, realtime_from_args
from edge.errors import PreviewError
from edge.events import DETECT, POSE, SEGMENT, Detection, Keypoint, LabelEvent, Prediction
from edge.pipeline.capture import FrameGrabber
from edge.preview import PreviewOptions, parse_bind
from edge.preview.encoder import PreviewHub
from edge.preview.metrics import prometheus_text
from edge.preview.overlay import SKELETON, annotate, colour, palette
from edge.preview.server import render_page
from tests.conftest import ROOT, need_tool
from tests.process_lines import stderr_lines, wait_line

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": ""}


def test_bind_addresses() -> None:
    assert parse_bind("8080") == ("127.0.0.1", 8080)
    assert parse_bind("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_bind("[::1]:0") == ("::1", 0)
    for bad in ("http", ":80", "1.2.3.4:70000", "-1"):
        with pytest.raises(PreviewError, match=r"use \[HOST:\]PORT"):
            parse_bind(bad)


def test_metrics_text_format() -> None:
    text = prometheus_text({"frames": 12, "recent_fps": 30.5, "latency_p50_ms": 4.0,
                            "latency_p95_ms": None, "accuracy": None,
                            "sinks": {"mqtt": {"queued": 3, "delivered": 9}}},
                           {"clients": 1, "encoded": 7, "fps": 29.9})
    lines = text.splitlines()
    assert "edge_frames_total 12" in lines and "edge_fps 30.5" in lines
    assert 'edge_latency_ms{quantile="0.5"} 4.0' in lines
    assert not any("0.95" in line or "accuracy" in line for line in lines)  # unknown: absent
    assert 'edge_sink_delivered{sink="mqtt"} 9' in lines
    assert "# TYPE edge_preview_clients gauge" in lines
    for line in lines:
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[a-z]+=\"[^\"]*\"\})? \S+", line)


def _kind_event(kind: str, frame_size: tuple[int, int] = (640, 480), **fields: object
                ) -> LabelEvent:
    return LabelEvent(0, 0, 0, 3.0, 0.0, (Prediction(1, "person", 0.9),), kind=kind,
                      frame_size=frame_size, **fields)  # type: ignore[arg-type]


def _near(pixel: np.ndarray, bgr: tuple[int, int, int], tolerance: int = 40) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(bgr)).max() <= tolerance)


def test_boxes_drawn_where_the_detections_are_scaled_to_the_picture() -> None:
    grey = np.full((240, 320, 3), 128, np.uint8)  # the picture at half the frame's size
    event = _kind_event(DETECT, detections=(
        Detection(15, "person", 0.9, (100.0, 200.0, 300.0, 400.0)),
        Detection(2, "bicycle", 0.5, (float("nan"), 0.0, 1.0, 1.0)),  # skipped, no error
        Detection(3, "car", 0.5, (-1e12, -1e12, 1e12, 1e12))))  # clipped, no overflow
    out = annotate(grey.copy(), event, fps=12.0)
    person = colour(15)
    # the box spans x 50..150, y 100..200 in the picture (out[y, x])
    assert _near(out[150, 50], person) and _near(out[150, 150], person)
    assert _near(out[150, 100], (128, 128, 128))  # inside the box: untouched
    assert _near(out[94, 52], person)  # the label's background just above the top edge
    assert _near(out[150, 30], (128, 128, 128))  # outside: untouched


def test_mask_blended_over_its_class_pixels_background_left_clear() -> None:
    black = np.zeros((120, 160, 3), np.uint8)
    mask = np.zeros((6, 8), np.uint8)
    mask[3:, 4:] = 15  # bottom right quarter: class 15 (person, in PASCAL VOC)
    out = annotate(black.copy(), _kind_event(SEGMENT, (160, 120), mask=mask), fps=1.0)
    tint = tuple(int(v) // 2 for v in palette()[15])
    assert _near(out[100, 120], tint, 3)
    assert _near(out[50, 60], (0, 0, 0), 0) or out[50, 60].sum() == 0  # background clear
    wide = np.full((6, 8), 300, np.int32)  # indices beyond the palette wrap, no error
    annotate(black.copy(), _kind_event(SEGMENT, (160, 120), mask=wide), fps=1.0)


def test_skeleton_between_confident_keypoints_only() -> None:
    black = np.zeros((240, 320, 3), np.uint8)
    points = (Keypoint("left_shoulder", 200.0, 300.0, 0.9),
              Keypoint("right_shoulder", 440.0, 300.0, 0.8),
              Keypoint("left_hip", 200.0, 420.0, 0.05),  # too unsure: no bone to it
              Keypoint("nose", float("inf"), 1.0, 0.9))
    out = annotate(black.copy(), _kind_event(POSE, keypoints=points), fps=1.0)
    assert ("left_shoulder", "right_shoulder") in SKELETON
    assert _near(out[150, 160], (0, 255, 255))  # the bone's middle, at half scale
    assert _near(out[150, 100], (0, 0, 255))  # the point
    assert out[180, 100].sum() == 0  # nothing towards the unsure hip


def test_encoder_makes_a_jpeg_of_every_kind() -> None:
    hub = PreviewHub(PreviewOptions(width=160))
    frame = np.zeros((480, 640, 3), np.uint8)
    for event in (_kind_event("classify"), _kind_event(DETECT, detections=(
            Detection(1, "a", 0.5, (0.0, 0.0, 320.0, 240.0)),)),
            _kind_event(SEGMENT, mask=np.ones((4, 4), np.uint8)),
            _kind_event(POSE, keypoints=(Keypoint("nose", 1.0, 1.0, 1.0),))):
        picture = cv2.imdecode(np.frombuffer(hub.encode(frame, event), np.uint8), 1)
        assert picture.shape == (120, 160, 3)


def test_pacer_follows_timestamps_and_never_bursts() -> None:
    pacer = Pacer(max_lag_s=1.0)
    assert pacer.delay(5.0, now=100.0) == 0.0  # first frame: at once
    assert pacer.delay(5.04, now=100.01) == pytest.approx(0.03)
    assert pacer.delay(5.08, now=100.2) == 0.0  # late by 0.12 s: no wait, clock kept
    assert pacer.delay(9.0, now=100.3) == pytest.approx(3.7)  # a gap in the file is waited
    assert pacer.delay(9.04, now=110.0) == 0.0  # far behind: anew, no fast-forward
    assert pacer.delay(9.08, now=110.0) == pytest.approx(0.04)
    assert pacer.delay(1.0, now=110.1) == 0.0  # a rewind starts over
    stamps = Pacer()
    assert [stamps.timestamp(v, 25.0) for v in (None, None, 0.5, 0.5, 0.2)] == \
        pytest.approx([0.04, 0.08, 0.5, 0.54, 0.58])
    assert Pacer().timestamp(None, 0.0) == pytest.approx(1 / 30)  # no fps: 30


@pytest.mark.parametrize(("argv", "expected"), [
    ([], False), (["--preview", "0"], True), (["--mqtt", "mqtt://localhost"], True),
    (["--preview", "0", "--no-realtime"], False), (["--realtime"], True),
])
def test_realtime_is_the_default_when_labels_are_watched_live(argv: list[str],
                                                             expected: bool) -> None:
    assert realtime_from_args(build_parser().parse_args(argv)) is expected


def test_page_escapes_title_and_token() -> None:
    page = render_page('<cam "1">', 'a&b"<')
    assert b"&lt;cam &quot;1&quot;&gt;" in page
    assert b'src="stream.mjpg?token=a%26b%22%3C"' in page and b"<cam" not in page


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _limit_descriptors() -> None:
    """In the child: the descriptor limit of a default systemd service."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


@contextmanager
def running_preview(out: Path, *extra: str, camera: str = "demo",
                    seen: list[str] | None = None) -> Iterator[str]:
    """edge-run with a preview on a free port, under ``ulimit -n 1024``; yields the preview's
    URL; the stderr lines read are appended to ``seen``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--camera", camera, "--max-frames", "10000000",
         "--preview", "0", "--output", str(out), "--status-interval", "0.5", *extra],
        cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=_limit_descriptors)
    seen = [] if seen is None else seen
    lines = stderr_lines(proc)
    try:
        yield wait_line(lines, r"preview at (http://\S+)", seen).group(1)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        while not lines.empty():
            seen.append(lines.get())


def test_token_guards_every_route_and_status_and_metrics_answer(tmp_path: Path) -> None:
    # no status line for an hour: /status and /metrics still have the run's numbers
    with running_preview(tmp_path / "labels.jsonl", "--preview-token", "s3cret",
                         "--status-interval", "3600") as url:
        assert _get(url + "status")[0] == 401
        assert _get(url + "metrics?token=wrong")[0] == 401
        assert _get(url)[0] == 401
        deadline = time.monotonic() + 120
        while True:
            code, body = _get(url + "status?token=s3cret")
            assert code == 200
            if json.loads(body)["last"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        status = json.loads(body)
        assert status["summary"]["frames"] >= 1 and status["summary"]["latency_p50_ms"] > 0
        code, body = _get(url + "metrics", token="s3cret")
        assert code == 200 and b"# TYPE edge_preview_clients gauge" in body
        frames = re.search(rb"^edge_frames_total (\d+)$", body, re.MULTILINE)
        assert frames and int(frames.group(1)) >= 1


def _chromium(*extra: str) -> object:
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (dev)")
    chromium = need_tool("chromium", "apt install chromium")
    driver_exe = need_tool("chromedriver", "apt install chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=800,900", *extra):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_exe), options=options)
    driver.set_page_load_timeout(120)
    return driver


@contextmanager
def chromium(*extra: str) -> Iterator[object]:
    """A headless chromium with a profile of its own, quit afterwards."""
    profile = tempfile.mkdtemp(prefix="edge-chromium-")
    driver = _chromium(f"--user-data-dir={profile}", *extra)
    try:
        yield driver
    finally:
        driver.quit()  # type: ignore[attr-defined]
        import shutil

        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[object]:
    with chromium() as driver:
        yield driver


@pytest.mark.slow
def test_preview_in_a_real_browser(browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver: object = browser
    out = tmp_path / "labels.jsonl"
    shown: list[tuple[int, str]] = []
    with running_preview(out) as url:
        driver.get(url)  # type: ignore[attr-defined]
        wait = WebDriverWait(driver, 120, poll_frequency=0.2)
        image = driver.find_element(By.ID, "stream")  # type: ignore[attr-defined]
        wait.until(lambda d: d.execute_script(
            "const i = document.getElementById('stream'); return i.complete && "
            "i.naturalWidth > 0"))
        first = image.screenshot_as_png
        wait.until(lambda d: image.screenshot_as_png != first)  # the picture moves
        assert first.startswith(b"\x89PNG")
        for _ in range(3):  # the label on the page, at three moments
            before = shown[-1][0] if shown else -1
            seq, text = wait.until(lambda d, before=before: _label(d, before))
            shown.append((seq, text))
        code, body = _get(url + "status")
        assert code == 200 and json.loads(body)["preview"]["clients"] >= 1
    events = {e["seq"]: e for e in map(json.loads, out.read_text().splitlines())}
    assert shown and all(events[seq]["label"] == text for seq, text in shown), shown


def _label(driver: object, after: int) -> tuple[int, str] | None:
    seq, text = driver.execute_script(  # type: ignore[attr-defined]
        "const l = document.getElementById('label'); return [l.dataset.seq, l.textContent];")
    return (int(seq), text) if seq and int(seq) > after else None


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@pytest.mark.slow
def test_1050_unfinished_requests_under_ulimit_1024_never_stop_the_labels(
        tmp_path: Path) -> None:
    """The case of issue 25: connections that never finish a request, more than the process
    has descriptors. The labels keep flowing, a new client is answered, nothing crashes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    out = tmp_path / "labels.jsonl"
    seen: list[str] = []
    socks: list[socket.socket] = []
    with running_preview(out, seen=seen) as url:
        host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        for _ in range(1050):  # connecting without waiting: the kernel queues what it can
            sock = socket.socket()
            sock.setblocking(False)
            assert sock.connect_ex((host, int(port))) in (0, errno.EINPROGRESS)
            socks.append(sock)
        waiting = list(socks)  # each sends half a request once it is connected
        deadline = time.monotonic() + 60
        while len(waiting) > 50 and time.monotonic() < deadline:
            still = []
            for sock in waiting:
                try:
                    sock.send(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                except BlockingIOError:
                    still.append(sock)  # not connected yet
                except OSError:
                    pass  # connected, then closed by the server to make room
            waiting = still
            time.sleep(0.2)
        before = _lines(out)
        time.sleep(3)
        assert _lines(out) > before  # labels still flowing
        closed = 0
        deadline = time.monotonic() + 120
        while closed < 500 and time.monotonic() < deadline:  # the flood, accepted 100 a second
            code, body = _get(url + "status")  # a new client gets in (idle ones make room)
            assert code == 200, body
            preview = json.loads(body)["preview"]
            assert preview["connections"] <= 640 and preview["accept_errors"] == 0, preview
            closed = preview["evicted"] + preview["timed_out"]
            time.sleep(0.5)
        assert closed >= 500, preview
        before = _lines(out)
        time.sleep(2)
        assert _lines(out) > before  # labels still flowing
        for sock in socks:
            sock.close()
    text = "".join(seen)
    assert "Traceback" not in text and "Too many open files" not in text, text[-2000:]


def _write_clip(path: Path, frames: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (96, 96))
    assert writer.isOpened()
    rng = np.random.default_rng(3)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (96, 96, 3), np.uint8))
    writer.release()


@pytest.mark.slow
def test_a_video_file_with_a_preview_plays_at_its_own_pace(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    _write_clip(clip, frames=40, fps=20.0)  # 2 s of video
    out = tmp_path / "labels.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--camera", str(clip), "--preview", "0",
         "--output", str(out)], cwd=ROOT, env=ENV, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    times = [e["time"] for e in events]
    # paced by the file's timestamps: the last frame is due 39 / 20 s after the first; frames
    # the model could not keep up with would be dropped, never played faster
    assert times[-1] - times[0] >= 0.9 * 39 / 20, (len(events), times[-1] - times[0])
    assert events[-1]["frame"] == 39


@pytest.mark.slow
def test_dns_rebinding_is_refused_in_a_real_browser(tmp_path: Path) -> None:
    """A page of another name resolving to 127.0.0.1 (rebinding) gets nothing from the
    token-less loopback preview; the same name given with --preview-host works."""
    from selenium.webdriver.support.ui import WebDriverWait

    rules = "--host-resolver-rules=MAP rebind.test 127.0.0.1"
    with chromium(rules) as driver:
        with running_preview(tmp_path / "a.jsonl") as url:
            port = url.rstrip("/").rsplit(":", 1)[1]
            driver.get(f"http://rebind.test:{port}/")  # type: ignore[attr-defined]
            body = driver.find_element("tag name", "body").text  # type: ignore[attr-defined]
            assert "not served as 'rebind.test'" in body and "--preview-host" in body
            assert not driver.find_elements("id", "stream")  # type: ignore[attr-defined]
            driver.get(url)  # type: ignore[attr-defined]  # its own address still works
            assert driver.find_elements("id", "stream")  # type: ignore[attr-defined]
        with running_preview(tmp_path / "b.jsonl", "--preview-host", "rebind.test") as url:
            port = url.rstrip("/").rsplit(":", 1)[1]
            driver.get(f"http://rebind.test:{port}/")  # type: ignore[attr-defined]
            WebDriverWait(driver, 120, poll_frequency=0.2).until(
                lambda d: _label(d, -1))


@pytest.mark.slow
def test_the_browser_shows_the_boxes_of_detections(tmp_path: Path) -> None:
    """Detection events of a known layout, fed as the loop feeds them; the picture chromium
    shows has the box in its class colour where the event put it."""
    from selenium.webdriver.support.ui import WebDriverWait

    from edge.preview.server import PreviewServer
    from tests.test_preview_server import Feeder

    class Detections(Feeder):
        def _run(self) -> None:
            while not self.stop.wait(1.0 / self.rate):
                event = _kind_event(DETECT, (640, 480), detections=(
                    Detection(15, "person", 0.9, (160.0, 120.0, 480.0, 360.0)),))
                self.server.hub.observe(self.frame, event)

    grey = np.full((480, 640, 3), 100, np.uint8)
    with PreviewServer(PreviewOptions(port=0, width=480), title="boxes") as server, \
            Detections(server, rate=30, frame=grey), chromium() as driver:
        driver.get(server.url)  # type: ignore[attr-defined]
        WebDriverWait(driver, 120, poll_frequency=0.2).until(lambda d: d.execute_script(
            "const i = document.getElementById('stream'); return i.complete && "
            "i.naturalWidth > 0"))
        png = driver.find_element("id", "stream").screenshot_as_png  # type: ignore[attr-defined]
    shown = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    height, width = shown.shape[:2]
    assert abs(width - 480) <= 4, shown.shape  # as streamed (plus the border)
    person = colour(15)
    # the box spans a quarter to three quarters of the picture: its left edge, mid-height
    column = shown[height // 2, width // 4 - 6: width // 4 + 6]
    assert any(_near(pixel, person) for pixel in column), column
    assert _near(shown[height // 2, width // 2], (100, 100, 100))  # inside: the frame


class _QuickClip(FrameSource):
    """A finite source whose frames come at once: the stand-in for a decoder."""

    live = False

    def __init__(self, frames: int, paced: bool) -> None:
        super().__init__()
        self.frames, self.paced = frames, paced

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self) -> Frame | None:
        if self._next_index >= self.frames:
            return None
        time.sleep(0.002)
        return self._frame(np.zeros((2, 2, 3), np.uint8), time.monotonic_ns())


@pytest.mark.parametrize("paced", [False, True])
def test_a_paced_file_is_handed_over_like_a_camera(paced: bool) -> None:
    """Unpaced, every frame of a file reaches a slow model; paced (--realtime), the newest
    does and the stale ones are counted as dropped, as a camera's."""
    taken = []
    with FrameGrabber(_QuickClip(60, paced)) as grabber:
        while (frame := grabber.get(timeout=5.0)) is not None or not grabber.ended:
            if frame is not None:
                taken.append(frame.index)
                time.sleep(0.02)  # a model slower than the file
    if paced:
        assert grabber.counters.dropped > 0 and len(taken) < 60
        assert len(taken) + grabber.counters.dropped == 60 and taken[-1] == 59
    else:
        assert taken == list(range(60)) and grabber.counters.dropped == 0


@pytest.mark.slow
def test_the_browser_is_served_while_a_crowd_of_stalled_clients_is_connected() -> None:
    """200 event clients and 30 viewers that never read (full socket buffers) and 300 idle
    sockets are connected; the page in chromium still gets a moving picture and fresh labels
    (the stalled clients' data waits in their own buffers, never in the way)."""
    from selenium.webdriver.support.ui import WebDriverWait

    from edge.preview.server import PreviewServer
    from tests.test_preview_server import Feeder, _connect, _stalled_clients

    noise = np.random.default_rng(11).integers(0, 256, (240, 320, 3), np.uint8)
    with PreviewServer(PreviewOptions(port=0, width=320), title="crowd") as server, \
            Feeder(server, rate=100, frame=noise):
        stalled = _stalled_clients(server, listeners=200, viewers=30)
        idle = [_connect(server) for _ in range(300)]
        for sock in idle:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        try:
            with chromium() as driver:
                driver.get(server.url)  # type: ignore[attr-defined]
                wait = WebDriverWait(driver, 120, poll_frequency=0.2)
                wait.until(lambda d: d.execute_script(
                    "const i = document.getElementById('stream'); return i.complete && "
                    "i.naturalWidth > 0"))
                image = driver.find_element("id", "stream")  # type: ignore[attr-defined]
                first = image.screenshot_as_png
                wait.until(lambda d: image.screenshot_as_png != first)  # the picture moves
                seen = -1
                for _ in range(3):  # fresh labels, three times
                    seen = wait.until(lambda d, seen=seen: _label(d, seen))[0]
                    assert seen >= server.hub.latest_event()[0] - 200  # newest, not a backlog
            counters = server.hub.counters
            assert counters.accept_errors == 0 and counters.listeners + counters.viewers >= 2
            assert counters.connections <= server.limit
        finally:
            for sock in stalled + idle:
                sock.close()
