"""Model files: regular files only, read bounded by the bytes actually read (edge.bounded_read;
labels files and images go through the same reader, tested with them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.bounded_read import read_bounded
from edge.errors import ModelError
from edge.model import read_model


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.tflite"
    os.mkfifo(path)
    return path


def test_fifo_is_refused_without_waiting_for_a_writer(fifo: Path) -> None:
    # Opening a FIFO for reading blocks until a writer comes; the reader must not open it so.
    with pytest.raises(ModelError, match=r"pipe\.tflite: is a FIFO \(named pipe\), not a regular"):
        read_model(fifo)


def test_fifo_with_data_waiting_is_still_refused(fifo: Path) -> None:
    keep_open = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(writer, b"\x1c\x00\x00\x00TFL3" + bytes(64))
        with pytest.raises(ModelError, match="is a FIFO"):
            read_model(fifo)
    finally:
        os.close(writer)
        os.close(keep_open)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_devices_are_refused(device: str) -> None:
    if not Path(device).exists():
        pytest.skip(f"{device} does not exist on this system")
    with pytest.raises(ModelError, match="is a device"):
        read_model(device)


def test_proc_file_with_st_size_0_is_read_bounded() -> None:
    # /proc files report st_size 0 yet have content: only the bytes read count.
    data = read_bounded("/proc/self/status", 1 << 20, error=ModelError, what="model")
    assert b"Name:" in data
    with pytest.raises(ModelError, match="larger than 16 bytes"):
        read_bounded("/proc/self/status", 16, error=ModelError, what="model")
