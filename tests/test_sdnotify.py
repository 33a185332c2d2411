"""systemd notify over a real AF_UNIX datagram socket: READY=1 after the first classified frame,
WATCHDOG=1 only while frames are being classified, STOPPING=1 at the end."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.camera.base import Frame, FrameSource
from edge.events import Prediction
from edge.pipeline.runner import LoopSettings, run_pipeline
from edge.pipeline.sdnotify import SystemdNotifier
from tests.conftest import ROOT, shared_file
from tests.test_run_cli import segments_video  # noqa: F401


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_then_rate_limited_watchdog(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    assert notifier.watchdog_s == 4.0
    notifier.frame_classified()
    assert receive(sock) == "READY=1"
    assert receive(sock) == "WATCHDOG=1"
    notifier.frame_classified()  # within a quarter of WatchdogSec: no second ping
    notifier.stopping()
    assert receive(sock) == "STOPPING=1"
    notifier.close()


def test_abstract_socket_address() -> None:
    name = f"edge-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(10)
    with sock:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.notify("STATUS=hello")
        assert receive(sock) == "STATUS=hello"


def test_outside_systemd_everything_is_a_no_op() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled and not notifier.notify("READY=1")
    notifier.frame_classified()


def test_watchdog_for_another_pid_is_ignored() -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000",
                                "WATCHDOG_PID": str(os.getpid() + 1)})
    assert notifier.watchdog_s is None


class HoldingSource(FrameSource):
    """Frames on demand; read number ``hold_at`` blocks until ``release`` is set."""

    live = False

    def __init__(self, hold_at: int) -> None:
        super().__init__()
        self.hold_at = hold_at
        self.held = threading.Event()
        self.release = threading.Event()

    def open(self) -> None:
        pass

    def close(self) -> None:
        self.release.set()

    def read(self) -> Frame | None:
        if self._next_index == self.hold_at:
            self.held.set()
            self.release.wait(30)
        return self._frame(np.zeros((2, 2, 3), np.uint8), time.monotonic_ns())


def test_no_watchdog_ping_while_no_frame_is_classified(
        notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    source = HoldingSource(hold_at=20)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "80000"})
    stop = threading.Event()
    run = threading.Thread(target=run_pipeline, kwargs=dict(
        source=source, classify=lambda rgb: [Prediction(0, "x", 1.0)], sinks=[],
        settings=LoopSettings(), stop=stop, notifier=notifier, stall_timeout_s=60))
    run.start()
    try:
        assert receive(sock) == "READY=1"
        assert receive(sock) == "WATCHDOG=1"
        assert source.held.wait(10)
        # Frames already taken may still ping for a moment; after that, silence.
        sock.settimeout(0.2)
        while True:
            try:
                receive(sock)
            except TimeoutError:
                break
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            receive(sock)
        source.release.set()
        sock.settimeout(10)
        assert receive(sock) == "WATCHDOG=1"  # frames flow again: pings resume
    finally:
        stop.set()
        source.release.set()
        run.join(10)
    assert not run.is_alive()


def test_edge_run_under_notify_socket(segments_video: Path,  # noqa: F811
                                      notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    model = shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": path,
           "WATCHDOG_USEC": "2000000"}
    messages: list[str] = []
    done = threading.Event()

    def listen() -> None:  # like systemd, read while the service runs (the socket never blocks)
        sock.settimeout(0.1)
        while not done.is_set():
            try:
                messages.append(receive(sock))
            except TimeoutError:
                continue

    listener = threading.Thread(target=listen)
    listener.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--camera", str(segments_video), "--model",
             str(model), "--quiet", "--status-interval", "0.05"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        done.set()
        listener.join()
    assert result.returncode == 0, result.stderr
    sock.settimeout(0.5)
    while True:
        try:
            messages.append(receive(sock))
        except TimeoutError:
            break
    states = [m for m in messages if not m.startswith("STATUS=")]  # status may come any time
    assert states[0] == "READY=1"  # nothing before the first classified frame
    assert "WATCHDOG=1" in states
    assert states[-1] == "STOPPING=1"
    assert any(m.startswith("STATUS=") and "fps" in m for m in messages)


@contextlib.contextmanager
def full_queue(path: str) -> Iterator[None]:
    """The receive queue of the socket at ``path`` is full while this is entered.

    Senders fill it until a fresh socket cannot send one datagram either, so the limit reached
    is the receiver's queue (net.unix.max_dgram_qlen), not one sender's buffer.
    """
    senders: list[socket.socket] = []
    try:
        while True:
            sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
            senders.append(sender)
            sent = 0
            while True:
                try:
                    sender.sendto(b"FILLER=1", path)
                except BlockingIOError:
                    break
                sent += 1
            if sent == 0:
                break
        yield
    finally:
        for sender in senders:
            sender.close()


def test_a_full_queue_drops_the_message_at_once(notify_socket: tuple[socket.socket, str]
                                                ) -> None:
    sock, path = notify_socket
    with full_queue(path):
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
        assert not notifier.notify("READY=1")  # dropped, not waited for
        notifier.frame_classified()
        assert not notifier.ready_sent
        notifier.close()
        assert receive(sock) == "FILLER=1"  # the queue holds only what was there before


def test_edge_run_keeps_going_when_the_notify_queue_is_full(
        notify_socket: tuple[socket.socket, str]) -> None:
    """Nobody reads the socket and its queue is full: edge-run labels every frame and ends."""
    _, path = notify_socket
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": path,
           "WATCHDOG_USEC": "40000"}
    with full_queue(path):
        result = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--camera", "demo", "--max-frames", "40",
             "--quiet", "--status-interval", "0.01"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 40
