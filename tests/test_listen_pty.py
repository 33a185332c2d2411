"""`edge-listen` as a real subprocess on real ttys: noise, unplugging, signals, bad input.

A pty does not throttle to its baud rate, so 10,000 frames take about a second. Every wait is on
the subprocess's output with a timeout; nothing sleeps and then asserts.
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from edge.backoff import Backoff
from edge.errors import SerialLinkError
from edge.serial.listen import listen
from edge.serial.protocol import STREAM_START, LabelRecord, encode_binary, encode_text

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
LISTEN = [sys.executable, "-m", "edge", "listen"]
TIMEOUT = 30.0
SOCAT = shutil.which("socat")


# --- the stream the writer sends ----------------------------------------------------------------

def record(seq: int) -> LabelRecord:
    return LabelRecord(seq, seq * 10, seq % 1000, (seq % 997) / 996, None,
                       ((seq % 7, 0.125),), 1.5)


def noisy_stream(count: int, seed: int) -> tuple[list[bytes], list[int]]:
    """Frames 0..count-1 with noise injected; returns the byte pieces and the intact seqs.

    About 3% of frames get one byte changed, 2% are truncated, and 3% are preceded by a burst
    of random bytes (ended by a 0x00, so the frame after it stays intact). The last is intact.
    """
    rng = random.Random(seed)
    pieces = [STREAM_START]
    intact = []
    for seq in range(count):
        frame = encode_binary(record(seq))
        roll = rng.random() if seq < count - 1 else 1.0
        if roll < 0.03:
            bad = bytearray(frame)
            at = rng.randrange(len(frame) - 1)
            bad[at] = rng.choice([b for b in range(1, 256) if b != bad[at]])
            pieces.append(bytes(bad))
        elif roll < 0.05:
            pieces.append(frame[:rng.randrange(1, len(frame) - 2)] + b"\x00")
        else:
            if roll < 0.08:
                pieces.append(rng.randbytes(rng.randrange(1, 300)) + b"\x00")
            pieces.append(frame)
            intact.append(seq)
    return pieces, intact


def write_stream(fd: int, count: int, seed: int) -> None:
    """The writer process: 115200 baud, raw, then the noisy stream in line-sized writes."""
    attrs = termios.tcgetattr(fd)
    attrs[4] = attrs[5] = termios.B115200
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    pieces, _ = noisy_stream(count, seed)
    data = b"".join(pieces)
    for i in range(0, len(data), 512):
        os.write(fd, data[i:i + 512])


# --- watching a subprocess ----------------------------------------------------------------------

class Lines:
    """Lines of a subprocess stream, collected by a thread, awaited with timeouts."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _next(self, what: str, timeout: float) -> bool:
        """Collect one more line; False once the stream has ended."""
        if self.closed:
            return False
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"timed out waiting for {what}; last lines: {self.lines[-5:]}")
        if line is None:
            self.closed = True
            return False
        self.lines.append(line)
        return True

    def wait_for(self, predicate: Callable[[list[str]], bool], what: str,
                 timeout: float = TIMEOUT) -> None:
        """Collect lines until ``predicate(self.lines)`` holds."""
        while not predicate(self.lines):
            if not self._next(what, timeout):
                pytest.fail(f"stream ended while waiting for {what}; lines: {self.lines[-5:]}")

    def wait_line(self, text: str, timeout: float = TIMEOUT) -> None:
        start = len(self.lines)
        self.wait_for(lambda lines: any(text in line for line in lines[start:]), repr(text),
                      timeout)

    def drain(self) -> list[str]:
        """Collect the rest, up to the end of the stream."""
        while self._next("the end of the stream", TIMEOUT):
            pass
        return self.lines


@contextmanager
def listener(*args: str) -> Iterator[tuple[subprocess.Popen[str], Lines, Lines]]:
    proc = subprocess.Popen([*LISTEN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        yield proc, Lines(proc.stdout), Lines(proc.stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)


def summary_of(stderr: Lines) -> dict[str, int]:
    for line in reversed(stderr.lines):
        if line.startswith('{"summary"'):
            result: dict[str, int] = json.loads(line)["summary"]
            return result
    pytest.fail(f"no summary on stderr: {stderr.lines[-5:]}")


def seqs(stdout: Lines) -> list[int]:
    return [json.loads(line)["seq"] for line in stdout.lines]


# --- tests --------------------------------------------------------------------------------------

@pytest.mark.serial
def test_10000_noisy_frames_over_a_pty() -> None:
    count, seed = 10_000, 5
    _, intact = noisy_stream(count, seed)
    corrupted = count - len(intact)
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        with listener(os.ttyname(slave), "--baud", "115200", "--format", "binary", "--json",
                      "--max-frames", str(len(intact)), "--duration", "60", "-v") as (
                          proc, out, err):
            err.wait_line("listening on")  # opening flushes the tty input; write after it
            writer = subprocess.Popen([sys.executable, __file__, str(master), str(count),
                                       str(seed)], pass_fds=(master,), env=ENV)
            assert proc.wait(TIMEOUT) == 0
            assert writer.wait(TIMEOUT) == 0
            out.drain()
            err.drain()
    finally:
        os.close(master)
        os.close(slave)
    assert seqs(out) == intact  # every uncorrupted frame, in order, nothing else
    summary = summary_of(err)
    print(f"pty: {len(intact)} intact of {count}; summary {summary}")
    assert summary["frames"] == summary["delivered"] == len(intact)
    assert summary["lost"] == corrupted  # the rest are counted, as sequence gaps
    assert summary["crc_errors"] + summary["malformed"] >= corrupted
    assert summary["resyncs"] >= summary["gaps"] > 0
    assert summary["restarts"] == summary["reconnects"] == 0


class Socat:
    """`socat` linking two ptys at ``dev`` (the device's end) and ``host`` (edge-listen's)."""

    def __init__(self, dev: Path, host: Path) -> None:
        assert SOCAT is not None
        self.proc = subprocess.Popen(
            [SOCAT, "-d", "-d", f"pty,raw,echo=0,link={dev}", f"pty,raw,echo=0,link={host}"],
            stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        Lines(self.proc.stderr).wait_line("starting data transfer loop")
        self.fd = os.open(dev, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def send(self, first: int, last: int) -> None:
        data = STREAM_START + b"".join(encode_binary(record(s)) for s in range(first, last))
        os.write(self.fd, data)

    def unplug(self) -> None:
        self.proc.terminate()
        self.proc.wait(TIMEOUT)
        os.close(self.fd)


@pytest.mark.serial
@pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
def test_unplug_and_replug_mid_stream(tmp_path: Path) -> None:
    dev, host = tmp_path / "dev", tmp_path / "host"
    link = Socat(dev, host)
    try:
        with listener(str(host), "--format", "binary", "--json", "--duration", "60",
                      "-v") as (proc, out, err):
            err.wait_line("listening on")
            link.send(0, 500)
            out.wait_for(lambda lines: len(lines) >= 500, "the first 500 records")
            link.unplug()
            err.wait_line("reconnecting")
            link = Socat(dev, host)
            err.wait_line("reconnected to")
            link.send(500, 1000)
            out.wait_for(lambda lines: len(lines) >= 1000, "the next 500 records")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(TIMEOUT) == 0
            err.drain()
    finally:
        link.unplug()
    assert seqs(out) == list(range(1000))
    summary = summary_of(err)
    assert summary["reconnects"] == 1 and summary["frames"] == 1000
    assert summary["gaps"] == summary["restarts"] == summary["crc_errors"] == 0


@pytest.mark.serial
def test_device_restart_text_mode_and_sigint_summary() -> None:
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        with listener(os.ttyname(slave), "-v") as (proc, out, err):
            err.wait_line("listening on")
            lines = [encode_text(LabelRecord(s, s, 1, 0.5, "cat")) for s in (0, 1, 2, 0, 1)]
            os.write(master, b"boot garbage\r\n" + b"".join(lines))
            out.wait_for(lambda got: len(got) >= 5, "five records")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(TIMEOUT) == 0
            err.drain()
    finally:
        os.close(master)
        os.close(slave)
    assert out.lines[0] == 'seq=0 time_ms=0 label=1 "cat" score=0.5000'
    summary = err.lines[-1]
    assert summary.startswith("edge-listen: frames=5,")
    assert "restarts=1" in summary and "malformed=1" in summary


@pytest.mark.serial
def test_missing_port_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "ttyACM9"
    result = subprocess.run([*LISTEN, str(missing)], capture_output=True, text=True, env=ENV,
                            timeout=TIMEOUT)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"edge-listen: error: no such port {missing}; plug in the device or list ports with "
        "`python -m serial.tools.list_ports`"]


if __name__ == "__main__":
    write_stream(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))


# --- the library loop, with ports injected ------------------------------------------------------

class VanishingPort:
    """Hands out ``data``, then fails as an unplugged device does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __enter__(self) -> VanishingPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.data = b""

    @property
    def in_waiting(self) -> int:
        return len(self.data)

    def read(self, size: int) -> bytes:
        if not self.data:
            raise OSError(5, "Input/output error")
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


def test_listen_reconnects_with_backoff_and_stops_at_max_frames() -> None:
    attempts: list[str] = []

    def open_port(url: str, baud: int, *, reset_on_open: bool) -> VanishingPort:
        attempts.append(url)
        if len(attempts) == 2:
            raise SerialLinkError(f"no such port {url}")
        first = 0 if len(attempts) == 1 else 10
        return VanishingPort(STREAM_START + b"".join(encode_binary(record(s))
                                                     for s in range(first, first + 10)))

    got: list[LabelRecord] = []
    summary = listen("/dev/ttyACM0", got.append, fmt="binary", max_frames=15,
                     backoff=Backoff(initial_s=0.001), open_port=open_port)
    assert [r.seq for r in got] == list(range(15))
    assert attempts == ["/dev/ttyACM0"] * 3
    assert summary.reconnects == 1 and summary.delivered == 15
    assert summary.stats.frames == 20  # the last batch was decoded whole


def test_listen_over_a_loop_url_stops_at_the_deadline() -> None:
    summary = listen("loop://", lambda r: None, duration=0.05)
    assert summary.stats.frames == 0 and summary.reconnects == 0
    assert summary.seconds >= 0.05


class FramePerReadPort(VanishingPort):
    """Hands out one encoded frame per read, as a slow line would."""

    def __init__(self, frames: list[bytes]) -> None:
        super().__init__(b"".join(frames))
        self.frames = list(frames)

    @property
    def in_waiting(self) -> int:
        return len(self.frames[0]) if self.frames else 0

    def read(self, size: int) -> bytes:
        if not self.frames:
            raise OSError(5, "Input/output error")
        return self.frames.pop(0)


def test_listen_reports_the_counters_every_status_interval() -> None:
    frames = [STREAM_START] + [encode_binary(record(s)) for s in range(12)]
    now = [0.0]

    def clock() -> float:
        return now[0]

    def on_record(r: LabelRecord) -> None:
        now[0] += 1.0  # each record takes a second on this line

    seen: list[dict] = []
    summary = listen("/dev/ttyACM0", on_record, fmt="binary", max_frames=12,
                     open_port=lambda url, baud, reset_on_open: FramePerReadPort(frames),
                     clock=clock, on_status=lambda s: seen.append(s.as_dict()),
                     status_interval_s=5.0)
    assert summary.delivered == 12
    assert [s["delivered"] for s in seen] == [5, 10]  # at t=5 s and t=10 s
    assert [s["seconds"] for s in seen] == [5.0, 10.0]
    assert all(s["frames"] == s["delivered"] for s in seen)


# --- one line from a device cannot end the listener ---------------------------------------------

def hostile_text_stream(good: int = 58) -> tuple[bytes, list[int]]:
    """Text lines: a lone surrogate, an overlong line, bad fields, between good records.

    Returns the bytes and the seqs of the good records (10 before the hostile lines).
    """
    def line(seq: int) -> bytes:
        return encode_text(LabelRecord(seq, seq, 1, 0.5, "cat", device="cam-1", run=0x1234))

    head = b'{"seq":10,"time_ms":10,"label":1,'
    hostile = [
        head + b'"text":"\\ud800","score":0.5}\n',  # a lone surrogate: not UTF-8
        head + b'"score":0.5,"device":"\\udfff"}\n',
        head + b'"score":0.5,"text":"' + b"x" * 2094 + b'"}\n',  # 2,150 bytes > 2,048
        head + b'"score":0.5,"detections":[[1,0.5,0.9,0,0.1,1]]}\n',  # xmin > xmax
    ]
    seqs = list(range(good))
    return b"".join(line(s) for s in seqs[:10]) + b"".join(hostile) + b"".join(
        line(s) for s in seqs[10:]), seqs


@pytest.mark.serial
@pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
def test_hostile_text_lines_are_counted_and_the_records_after_them_arrive(tmp_path: Path) -> None:
    data, good = hostile_text_stream()
    assert len(data.split(b"\n")[12]) + 1 == 2150
    link = Socat(tmp_path / "dev", tmp_path / "host")
    try:
        with listener(str(tmp_path / "host"), "--json", "--max-frames", str(len(good)),
                      "--duration", "60", "-v") as (proc, out, err):
            err.wait_line("listening on")
            os.write(link.fd, data)
            assert proc.wait(TIMEOUT) == 0
            out.drain()
            err.drain()
    finally:
        link.unplug()
    assert seqs(out) == good
    assert {json.loads(line)["run"] for line in out.lines} == {"00001234"}
    summary = summary_of(err)
    assert summary["malformed"] == 4 and summary["frames"] == len(good)
    assert not any("Traceback" in line for line in err.lines)


def test_an_error_of_the_consumer_is_not_a_lost_device() -> None:
    # `edge-listen | head -1`: printing raises BrokenPipeError (an OSError); that must end the
    # listener, not look like an unplugged device to reconnect to forever.
    opened: list[str] = []

    def open_port(url: str, baud: int, *, reset_on_open: bool) -> VanishingPort:
        opened.append(url)
        return VanishingPort(STREAM_START + b"".join(encode_binary(record(s)) for s in range(5)))

    def on_record(r: LabelRecord) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        listen("/dev/ttyACM0", on_record, fmt="binary", duration=5,
               backoff=Backoff(initial_s=0.001), open_port=open_port)
    assert opened == ["/dev/ttyACM0"]
