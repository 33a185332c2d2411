"""``edge-run --serial`` in binary mode and ``edge-listen`` on the other end of real ttys agree
frame for frame.

Two pty pairs joined by a relay thread in the test: edge-run writes to the first slave,
edge-listen reads the second. Both slaves are put in raw mode before either process starts,
so no byte is translated and none is lost while a process is still starting.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import ROOT, shared_file
from tests.test_run_cli import SEGMENT_FRAMES, SEGMENTS, segments_video  # noqa: F401

pytestmark = pytest.mark.serial

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": ""}
FRAMES = SEGMENT_FRAMES * len(SEGMENTS)


@contextmanager
def linked_ptys() -> Iterator[tuple[str, str]]:
    """Two tty paths: bytes written to the first come out of the second."""
    master_a, slave_a = os.openpty()
    master_b, slave_b = os.openpty()
    tty.setraw(slave_a)
    tty.setraw(slave_b)
    done = threading.Event()

    def relay() -> None:
        while not done.is_set():
            ready, _, _ = select.select([master_a], [], [], 0.05)
            if ready:
                try:
                    data = os.read(master_a, 4096)
                except OSError:  # the writer closed its end
                    continue
                os.write(master_b, data)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave_a), os.ttyname(slave_b)
    finally:
        done.set()
        thread.join(5)
        for fd in (master_a, slave_a, master_b, slave_b):
            os.close(fd)


def run_into_listener(run_args: list[str], listen_args: list[str]
                      ) -> tuple[subprocess.CompletedProcess[str], int, str, str]:
    """``edge-run ARGS --serial TTY`` with ``edge-listen ARGS`` on the other end of linked
    ptys; returns the run, and the listener's exit code, stdout and stderr."""
    with linked_ptys() as (writer_port, reader_port):
        listener = subprocess.Popen(
            [sys.executable, "-m", "edge", "listen", reader_port, *listen_args],
            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            run = subprocess.run(
                [sys.executable, "-m", "edge", "run", *run_args, "--serial", writer_port],
                cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
            heard, listen_err = listener.communicate(timeout=60)
        finally:
            if listener.poll() is None:
                listener.kill()
    return run, listener.returncode, heard, listen_err


def test_binary_serial_stream_matches_the_labels_frame_for_frame(segments_video) -> None:  # noqa: F811
    model = shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")
    run, listen_code, heard, listen_err = run_into_listener(
        ["--camera", str(segments_video), "--model", str(model), "--top-k", "3",
         "--serial-format", "binary", "--stdout", "--quiet"],
        ["--format", "binary", "--json", "--max-frames", str(FRAMES), "--duration", "90"])
    assert run.returncode == 0, run.stderr
    assert listen_code == 0, listen_err
    sent = [json.loads(line) for line in run.stdout.splitlines()]
    received = [json.loads(line) for line in heard.splitlines()]
    assert len(sent) == len(received) == FRAMES
    for s, r in zip(sent, received, strict=True):
        assert r["seq"] == s["seq"]
        assert r["label"] == s["index"]
        assert r["score"] == pytest.approx(s["score"], abs=2e-5)
        assert r["latency_ms"] == pytest.approx(s["latency_ms"], abs=0.006)
        assert [pair[0] for pair in r["top_k"]] == [p["index"] for p in s["top_k"][1:]]
    summary = json.loads(listen_err.strip().splitlines()[-1])["summary"]
    assert summary["frames"] == FRAMES
    assert summary["crc_errors"] == summary["gaps"] == summary["malformed"] == 0
