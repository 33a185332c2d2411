"""``edge-run`` end to end in real subprocesses: a real video file made with OpenCV VideoWriter,
the real LiteRT interpreter, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA, shared_file

cv2 = pytest.importorskip("cv2")

SEGMENTS = (("parrot.jpg", 89), ("cat.bmp", 286), ("grace_hopper.bmp", 653))
SEGMENT_FRAMES = 12
MODEL = "../shared/data/models/tf2_mobilenet_v2_1.0_224_ptq.tflite"


def write_video(path: Path, images: list[Path], frames_each: int, size=(640, 480)) -> Path:
    """A real video file: each image squashed to ``size``, shown for ``frames_each`` frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, size)
    assert writer.isOpened(), "OpenCV cannot write mp4v video here"
    for image in images:
        bgr = cv2.resize(cv2.imread(str(image)), size, interpolation=cv2.INTER_AREA)
        for _ in range(frames_each):
            writer.write(bgr)
    writer.release()
    return path


@pytest.fixture(scope="module")
def segments_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images = [shared_file(f"images/{name}") for name, _ in SEGMENTS]
    return write_video(tmp_path_factory.mktemp("video") / "segments.mp4", images, SEGMENT_FRAMES)


@pytest.fixture
def model() -> str:
    shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")
    return MODEL


def edge_run_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge", "run", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": ""}


def run_edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(edge_run_cmd(*args), cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def label_lines(stdout: str) -> tuple[list[dict], dict | None]:
    records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    summary = records.pop()["summary"] if records and "summary" in records[-1] else None
    return records, summary


def test_video_file_segments_are_labelled_correctly(segments_video: Path, model: str) -> None:
    assert SHARED_DATA.is_dir()
    result = run_edge("--camera", str(segments_video), "--model", model, "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    labels, summary = label_lines(result.stdout)
    assert summary is not None and summary["frames"] == len(labels)
    assert len(labels) == SEGMENT_FRAMES * len(SEGMENTS)  # a file is read to its end, no drops
    for k, (name, expected) in enumerate(SEGMENTS):
        segment = labels[k * SEGMENT_FRAMES:(k + 1) * SEGMENT_FRAMES]
        got = [rec["index"] for rec in segment]
        assert got == [expected] * SEGMENT_FRAMES, f"{name}: {got}"
    assert summary["latency_p50_ms"] > 0


def test_sigterm_mid_run_exits_0_with_every_label_flushed(segments_video: Path, model: str,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    proc = subprocess.Popen(
        edge_run_cmd("--camera", str(segments_video), "--model", model, "--loop", "--json",
                     "--stdout", "--output", str(out), "--quiet"),
        cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = [proc.stdout.readline() for _ in range(5)]  # the run is labelling frames
        assert all(line.endswith("\n") for line in first)
        proc.send_signal(signal.SIGTERM)
        # Read through the same buffered file: communicate() reads the raw pipe and would lose
        # lines readline() has already buffered. --quiet keeps stderr far below a pipe's size.
        rest = proc.stdout.read()
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    labels, summary = label_lines("".join(first) + rest)
    assert summary is not None, "no final summary: the run did not finish cleanly"
    assert len(labels) == summary["frames"] >= 5
    assert [rec["seq"] for rec in labels] == list(range(len(labels)))
    file_labels = [json.loads(line) for line in out.read_text().splitlines()]
    assert file_labels == labels


def test_list_boards_prints_one_line_per_linux_board() -> None:
    result = run_edge("--list-boards")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"host", "rpi4", "rpi5", "rpi-zero2w", "coral-devboard", "rpi4-coral-usb",
            "rpi5-coral-usb"} <= set(names)
    assert len(names) == len(set(names))


def test_unknown_board_names_the_nearest_ones() -> None:
    result = run_edge("--board", "rpi", "--camera", "demo")
    assert result.returncode == 2
    assert "rpi4" in result.stderr and "rpi5" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_camera_is_one_clear_line(model: str, tmp_path: Path) -> None:
    result = run_edge("--camera", str(tmp_path / "nope.mp4"), "--model", model)
    assert result.returncode == 2
    assert "no such camera, file or folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_accuracy_is_at_least_90_percent() -> None:
    from edge import demo

    if not demo.model_path().is_file():
        pytest.skip(f"the bundled demo model {demo.model_path()} is not built yet")
    result = run_edge("--board", "host", "--camera", "demo", "--max-frames", "300", "--json")
    assert result.returncode == 0, result.stderr
    labels, summary = label_lines(result.stdout)
    assert summary is not None and len(labels) == summary["frames"] == 300
    assert all("truth" in rec for rec in labels)
    correct = sum(rec["index"] == rec["truth"] for rec in labels)
    # The summary rounds the accuracy to 4 decimals.
    assert correct / len(labels) == pytest.approx(summary["accuracy"], abs=5e-5)
    assert summary["accuracy"] >= 0.9
    assert "accuracy against the scene's ground truth" in result.stderr
