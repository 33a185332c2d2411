"""The atomic writer: whole outputs or none, umask modes, and no temporaries past a kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.outputs import (
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    clean_stale_temps,
    current_umask,
)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_current_umask_matches_os_umask() -> None:
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_written_file_gets_the_umask_modes(tmp_path: Path, mask: int, mode: int) -> None:
    old = os.umask(mask)
    try:
        out = atomic_write_bytes(tmp_path / "model.tflite", b"abc")
    finally:
        os.umask(old)
    assert out.read_bytes() == b"abc"
    assert out.stat().st_mode & 0o777 == mode
    assert _leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_output_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "labels.txt"
    out.write_text("old\n")
    with pytest.raises(KeyboardInterrupt), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert out.read_text() == "old\n"
    assert _leftovers(tmp_path) == []


def test_a_suffix_for_writers_that_check_the_ending(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "m.keras", suffix=".keras") as tmp:
        assert tmp.name.endswith(".keras") and tmp.parent == tmp_path
        tmp.write_bytes(b"k")
    assert (tmp_path / "m.keras").read_bytes() == b"k"


def test_a_directory_replaces_the_old_one_whole(tmp_path: Path, umask_022: None) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "stale.txt").write_text("x")
    with atomic_directory(out) as staging:
        (staging / "main.cpp").write_text("int main() {}\n")
    assert sorted(p.name for p in out.iterdir()) == ["main.cpp"]
    assert out.stat().st_mode & 0o777 == 0o755
    assert _leftovers(tmp_path) == []


def test_a_failed_directory_keeps_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(RuntimeError), atomic_directory(out) as staging:
        (staging / "half.cpp").write_text("int")
        raise RuntimeError("generator failed")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert _leftovers(tmp_path) == []


def test_temporaries_of_a_killed_writer_are_cleaned_by_the_next_one(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from edge.outputs import atomic_directory, atomic_path
        with atomic_path({str(tmp_path / 'big.bin')!r}) as tmp, \\
                atomic_directory({str(tmp_path / 'proj')!r}) as staging:
            tmp.write_bytes(b"x" * 1000)
            (staging / "a.h").write_text("//")
            print("ready", flush=True)
            time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    left = _leftovers(tmp_path)
    assert len(left) == 2 and all(f"-tmp-{child.pid}-" in name for name in left)
    # A live writer's temporaries are kept; the dead one's go.
    mine = tmp_path / f".other.edge-tmp-{os.getpid()}-abcd1234"
    mine.write_text("in progress")
    removed = clean_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == left
    assert _leftovers(tmp_path) == [mine.name]
    atomic_write_bytes(tmp_path / "big.bin", b"y")
    assert not (tmp_path / "proj").exists()
