"""Files and folders are read at their own pace: the stall watchdog reopens live sources only.

The slow source is real: a folder whose second image is a 2500x2500 noise JPEG that OpenCV takes
a few hundred milliseconds to decode, far beyond the stall timeout given to edge-run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.camera import source_kind
from edge.errors import CameraError
from edge.pipeline.runner import LoopSettings
from edge.pipeline.service import RunOptions, SourceOptions, run_service
from tests.hostile import png_bomb


def _options(camera: str, max_image_pixels: int | None = None) -> RunOptions:
    return RunOptions(source=SourceOptions(camera=camera, max_image_pixels=max_image_pixels))


@pytest.fixture(scope="module")
def slow_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("slow")
    rng = np.random.default_rng(0)
    for index in (0, 2, 3):
        image = rng.integers(0, 256, (64, 64, 3), np.uint8)
        cv2.imwrite(str(folder / f"img{index}.png"), image)
    noise = rng.integers(0, 256, (2500, 2500, 3), np.uint8)
    cv2.imwrite(str(folder / "img1.jpg"), noise, [cv2.IMWRITE_JPEG_QUALITY, 100])
    return folder


def test_a_slow_image_in_a_folder_is_waited_for_not_reopened(slow_folder: Path) -> None:
    out = io.StringIO()
    summary = run_service(RunOptions(
        source=SourceOptions(camera=str(slow_folder), stall_timeout_s=0.001),
        loop=LoopSettings(max_frames=20)), stdout=out)
    assert summary.frames == 4  # each image once; a reopen would start the folder over
    assert summary.stalls == 0 and summary.reconnects == 0
    assert [json.loads(line)["frame"] for line in out.getvalue().splitlines()] == [0, 1, 2, 3]


def test_a_folder_without_one_readable_image_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "bomb.png").write_bytes(png_bomb())
    with pytest.raises(CameraError, match=r"no frame could be read; the last error: .*bomb\.png: "
                                          r"PNG header claims 100000x100000"):
        run_service(_options(str(tmp_path)), stdout=io.StringIO())


def test_a_bomb_among_good_images_is_skipped(slow_folder: Path, tmp_path: Path) -> None:
    for path in slow_folder.glob("*.png"):  # img0, img2, img3
        (tmp_path / path.name).write_bytes(path.read_bytes())
    (tmp_path / "img1.png").write_bytes(png_bomb(5000, 5000))  # 25 MP, over a 16 MP board
    out = io.StringIO()
    summary = run_service(RunOptions(source=SourceOptions(camera=str(tmp_path)),
                                     board="rpi-zero2w"), stdout=out)
    assert summary.frames == 3 and summary.camera_errors == 1
    summary = run_service(_options(str(tmp_path), max_image_pixels=10_000),
                          stdout=io.StringIO())
    assert summary.frames == 3 and summary.camera_errors == 1


def test_one_image_file_as_camera_is_read_once_and_a_bomb_never_reaches_ffmpeg(
        slow_folder: Path, tmp_path: Path) -> None:
    assert source_kind(str(slow_folder / "img0.png")) == "image"
    out = io.StringIO()
    summary = run_service(_options(str(slow_folder / "img0.png")), stdout=out)
    assert summary.frames == 1 and len(out.getvalue().splitlines()) == 1
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    with pytest.raises(CameraError, match=r"bomb\.png: no frame could be read; the last error: .*"
                                          "100000x100000"):
        run_service(_options(str(bomb)), stdout=io.StringIO())


def test_a_video_without_one_decodable_frame_is_an_error(tmp_path: Path) -> None:
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\0\0\0\x18ftypmp42" + b"\0" * 64)
    assert source_kind(str(video)) == "file"
    with pytest.raises(CameraError):
        run_service(_options(str(video)), stdout=io.StringIO())
