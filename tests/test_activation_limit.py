"""Activation memory is bounded before anything is allocated, by the board or the flag."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.boards import get_board
from edge.cli.classify import main as classify
from edge.cli.run import main as run
from edge.errors import ModelError
from edge.model import read_model
from edge.runtime import Classifier
from edge.runtime.resources import activation_bytes
from tests.model_mutants import tiny_model


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), np.zeros((32, 32, 3), np.uint8))
    return path


def _model(tmp_path: Path, shape: tuple[int, ...]) -> Path:
    path = tmp_path / f"{'x'.join(map(str, shape))}.tflite"
    path.write_bytes(tiny_model(shape))
    return path


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_activation_bytes_is_the_sum_of_non_constant_tensors(tmp_path: Path) -> None:
    model = read_model(tiny_model((1, 10, 10, 3)))
    assert activation_bytes(model) == 2 * 300 * 4


def test_an_8000x8000_input_is_refused_before_allocation(tmp_path: Path, image: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    model = _model(tmp_path, (1, 8000, 8000, 3))
    assert classify(["--model", str(model), str(image)]) == 2
    line = _one_error(capsys)
    assert "needs 1,464.8 MB of activations" in line and "limit of 1,024 MB" in line
    assert "--max-activation-mb" in line
    assert run(["--camera", "demo", "--model", str(model), "--max-frames", "1"]) == 2
    assert "needs 1,464.8 MB of activations" in _one_error(capsys)


def test_the_board_profile_sets_the_limit(tmp_path: Path, image: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    limit = get_board("rpi-zero2w").runtime.max_activation_mb  # type: ignore[union-attr]
    assert limit == 128
    model = _model(tmp_path, (1, 3000, 3000, 3))  # 206 MB: fine on a host, not on a Zero 2 W
    assert classify(["--model", str(model), "--board", "rpi-zero2w", str(image)]) == 2
    assert "limit of 128 MB" in _one_error(capsys)
    assert run(["--board", "rpi-zero2w", "--camera", "demo", "--model", str(model),
                "--max-frames", "1"]) == 2
    assert "limit of 128 MB" in _one_error(capsys)


def test_the_flag_raises_or_lowers_it(tmp_path: Path) -> None:
    model = _model(tmp_path, (1, 512, 512, 3))  # 6 MB
    with pytest.raises(ModelError, match="limit of 1 MB"):
        Classifier.open(model, max_activation_mb=1)
    # Raised: the bound passes and the model opens (an image-sized output of 3 scores per
    # pixel reads as a segmentation model).
    with Classifier.open(model, max_activation_mb=8) as opened:
        assert opened.kind.kind == "segment"
