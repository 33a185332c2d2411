"""Small trained centroid detectors (FOMO-style) for the firmware tests.

Each is trained by the real commands through :func:`tests.detector_fixture.trained_detector`
(``tools/make_detect_data.py``, ``edge-model train --task detect --alpha 0.35 --weights none``
for a few epochs, ``edge-model quantize``), so the firmware is tested on what a user's detector
is: labels ``background + classes`` and a training record with ``"task": "detect"`` and the
threshold chosen on validation. One square detector with two classes and one non-square
(128x96) with four; objects drawn at the input size. Cached outside the repo.

:func:`scenes` gives held-out images of the same kind (another seed) as int8 input tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tests.detector_fixture import DetectorRecipe, trained_detector

KINDS = ("disc", "cross", "square", "triangle", "ring")


@dataclass(frozen=True)
class DetectorShape:
    """One test detector: input width and height, classes, and how long it trains."""

    name: str
    width: int
    height: int
    classes: int
    images: int = 400
    epochs: int = 12

    @property
    def kinds(self) -> list[str]:
        return list(KINDS[:self.classes])

    @property
    def radius(self) -> tuple[int, int]:
        low = max(3, min(self.width, self.height) // 16)
        return low, 2 * low

    def recipe(self) -> DetectorRecipe:
        return DetectorRecipe(
            self.name, images=self.images, seed=1, kinds=",".join(self.kinds),
            size="{},{}".format(*self.radius), width=self.width, height=self.height,
            train=("--input-size", f"{self.width}x{self.height}", "--alpha", "0.35",
                   "--epochs", str(self.epochs), "--batch-size", "16", "--seed", "0",
                   "--weights", "none"))


SQUARE = DetectorShape("square-96-2", 96, 96, 2)
ODD = DetectorShape("odd-128x96-4", 128, 96, 4)
SHAPES = (SQUARE, ODD)


def detector_model(tf: Any, shape: DetectorShape) -> Path:
    """The cached ``.tflite`` of ``shape`` (trained and quantized now the first time);
    ``tf`` is taken so callers skip without TensorFlow."""
    del tf
    return trained_detector(shape.recipe()).tflite


def scene_images(shape: DetectorShape, count: int, seed: int) -> list[np.ndarray]:
    """``count`` RGB images of shapes on noisy backgrounds at the model's input size."""
    from tools.make_detect_data import make_image

    rng = np.random.default_rng(seed)
    return [cv2.cvtColor(make_image(rng, shape.kinds, shape.width, shape.height,
                                    shape.radius)[0], cv2.COLOR_BGR2RGB)
            for _ in range(count)]


def scenes(model: Path, shape: DetectorShape, count: int, seed: int = 99) -> list[np.ndarray]:
    """Held-out images as the model's int8 input tensors ``[1, H, W, 3]``."""
    from edge.model import read_model

    tensor = read_model(model).input_tensors[0]
    assert tensor.quantization is not None
    scale, zero = tensor.quantization.scale[0], tensor.quantization.zero_point[0]
    return [np.clip(np.round(image.astype(np.float32) / scale + zero), -128, 127)
            .astype(np.int8)[None] for image in scene_images(shape, count, seed)]
