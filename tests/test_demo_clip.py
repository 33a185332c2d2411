"""``python -m edge.demo.clip``: the sample video the docs use, made by the project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.demo.clip import main
from edge.demo.scene import DemoScene
from tests.conftest import ROOT


def test_clip_holds_the_demo_frames(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    assert main([str(out), "--frames", "20", "--fps", "10"]) == 0
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == 10.0
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 20
    scene = DemoScene(seed=0, size=(320, 240))
    for decoded in frames[:3]:
        rgb, _ = scene.next_frame()
        expected = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.float64)
        mse = np.mean((decoded.astype(np.float64) - expected) ** 2)
        assert 10 * np.log10(255**2 / mse) > 25  # lossy mp4v, but the same picture
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_bad_names_are_one_line_and_leave_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be\n")  # refused even for root
    for target, message in ((tmp_path / "clip.gif", "must end in .mp4"),
                            (blocker / "clip.mp4", "cannot write a video there")):
        result = subprocess.run([sys.executable, "-m", "edge.demo.clip", str(target)], cwd=ROOT,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == [blocker]
