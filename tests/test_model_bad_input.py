"""Malformed input of every kind ends in ModelError: one clear line, exit 2, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import ModelError
from edge.model import read_model
from tests.conftest import ROOT, shared_file

SMALL = "models/person_detect.tflite"
LARGE = "models/tf2_mobilenet_v2_1.0_224_ptq.tflite"


def _read_or_model_error(data: bytes) -> None:
    try:
        read_model(data, name="mutant")
    except ModelError as e:
        message = str(e)
        assert message.startswith("mutant: ") and "\n" not in message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.tflite"
    path.write_bytes(b"")
    with pytest.raises(ModelError, match=r"empty\.tflite: 0 bytes is too short"):
        read_model(path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model file"):
        read_model(tmp_path / "nope.tflite")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is a directory"):
        read_model(tmp_path)


def test_wrong_kind_of_file_with_model_extension(tmp_path: Path) -> None:
    image = shared_file("images/parrot.jpg")
    path = tmp_path / "parrot.tflite"
    path.write_bytes(image.read_bytes())
    with pytest.raises(ModelError, match="not a TFLite model"):
        read_model(path)


def test_valid_model_with_wrong_extension_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(shared_file(SMALL).read_bytes())
    assert read_model(path).main.operators


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes(seed: int) -> None:
    data = bytearray(os.urandom(64 + seed * 97))
    _read_or_model_error(bytes(data))
    data[4:8] = b"TFL3"  # get past the identifier check, into the verifier
    _read_or_model_error(bytes(data))


def test_every_prefix_of_a_small_model() -> None:
    content = shared_file(SMALL).read_bytes()
    # The flatbuffer's tables sit near its end and its root offset at the start: every cut
    # below the full length must be caught. Dense near both ends, strided in between.
    lengths = set(range(0, 4096)) | set(range(len(content) - 4096, len(content)))
    lengths |= set(range(0, len(content), 251))
    for n in sorted(lengths):
        with pytest.raises(ModelError):
            read_model(content[:n], name="prefix")


def test_dense_prefixes_of_mobilenet_v2() -> None:
    content = shared_file(LARGE).read_bytes()
    model = read_model(content)
    end = model.flatbuffer_size
    for n in range(0, end, max(end // 1500, 1)):
        with pytest.raises(ModelError):
            read_model(content[:n], name="prefix")


_SMALL_CONTENT: bytes | None = None


def _small() -> bytes:
    global _SMALL_CONTENT
    if _SMALL_CONTENT is None:
        _SMALL_CONTENT = shared_file(SMALL).read_bytes()
    return _SMALL_CONTENT


@settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutations_of_a_real_model(data: st.DataObject) -> None:
    content = bytearray(_small())
    # Mutations land where they matter most: the flatbuffer's tables, vtables and offsets
    # (the tail holds them; the middle is mostly weight bytes that no check can judge).
    edits = data.draw(st.integers(1, 8))
    for _ in range(edits):
        region = data.draw(st.sampled_from(["head", "tail", "anywhere"]))
        n = len(content)
        low, high = {"head": (0, 512), "tail": (n - 12_000, n - 1),
                     "anywhere": (0, n - 1)}[region]
        pos = data.draw(st.integers(low, high))
        kind = data.draw(st.sampled_from(["flip", "byte", "word", "delete", "insert"]))
        if kind == "flip":
            content[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "byte":
            content[pos] = data.draw(st.integers(0, 255))
        elif kind == "word":
            value = data.draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                                               0xFFFF, 4, len(content)]))
            content[pos:pos + 4] = value.to_bytes(4, "little")
        elif kind == "delete":
            del content[pos:pos + data.draw(st.integers(1, 64))]
        else:
            content[pos:pos] = data.draw(st.binary(min_size=1, max_size=64))
    _read_or_model_error(bytes(content))


def _inspect(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "edge", "inspect", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize("case", ["empty", "truncated", "random", "image", "directory",
                                  "missing"])
def test_inspect_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    real = shared_file(SMALL).read_bytes()
    path = tmp_path / "model.tflite"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        path.write_bytes(real[: len(real) // 2])
    elif case == "random":
        path.write_bytes(os.urandom(5000))
    elif case == "image":
        path.write_bytes(shared_file("images/parrot.jpg").read_bytes())
    elif case == "directory":
        path = tmp_path
    else:
        path = tmp_path / "missing.tflite"
    result = _inspect(str(path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edge-inspect: error: ") and str(path) in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
