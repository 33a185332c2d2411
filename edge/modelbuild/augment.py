"""On-the-fly augmentation of training batches, in numpy and OpenCV (no TensorFlow).

Suited to a fixed camera: the object moves a little and the light changes, the scene is not
turned upside down. Each image of a batch gets, independently:

* a horizontal flip with probability 1/2 (``flip``; turn it off for text, digits, arrows);
* a random crop keeping between ``crop`` and all of each side, resized back to the input size
  (the object shifts and grows a little, as when the camera or the object moves);
* a brightness offset of up to ``brightness`` x 255;
* a contrast factor in [1 - ``contrast``, 1 + ``contrast``] around the image's mean.

The same generator state gives the same batch, so training is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import TrainingError


@dataclass(frozen=True)
class Augmentation:
    """How strongly training images are varied; :meth:`none` turns everything off."""

    flip: bool = True
    crop: float = 0.85
    brightness: float = 0.15
    contrast: float = 0.2

    def __post_init__(self) -> None:
        if not 0.3 <= self.crop <= 1.0:
            raise TrainingError(f"crop (={self.crop}) must be in [0.3, 1] (the share of each "
                                "side a random crop keeps)")
        for name, value in (("brightness", self.brightness), ("contrast", self.contrast)):
            if not 0.0 <= value <= 1.0:
                raise TrainingError(f"{name} (={value}) must be in [0, 1]")

    @classmethod
    def none(cls) -> Augmentation:
        return cls(flip=False, crop=1.0, brightness=0.0, contrast=0.0)

    def to_dict(self) -> dict[str, float | bool]:
        return {"flip": self.flip, "crop": self.crop, "brightness": self.brightness,
                "contrast": self.contrast}


def random_crop(rng: np.random.Generator, image: np.ndarray, keep: float) -> np.ndarray:
    """A crop keeping a random share in [keep, 1] of each side, resized to the input size."""
    height, width = image.shape[:2]
    share = rng.uniform(keep, 1.0)
    h, w = max(1, round(height * share)), max(1, round(width * share))
    top = int(rng.integers(0, height - h + 1))
    left = int(rng.integers(0, width - w + 1))
    if (h, w) == (height, width):
        return image
    return cv2.resize(image[top:top + h, left:left + w], (width, height),
                      interpolation=cv2.INTER_LINEAR)


def augment_batch(rng: np.random.Generator, images: np.ndarray,
                  aug: Augmentation) -> np.ndarray:
    """Augmented copies of a batch of uint8 RGB images, as float32 pixels 0..255.

    Args:
        rng: random source.
        images: (batch, height, width, 3) uint8.
        aug: what to vary.
    """
    out = np.empty(images.shape, np.float32)
    for i, image in enumerate(images):
        if aug.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        if aug.crop < 1.0:
            image = random_crop(rng, image, aug.crop)
        out[i] = image
    n = len(images)
    factor = rng.uniform(1.0 - aug.contrast, 1.0 + aug.contrast, n).astype(np.float32)
    offset = rng.uniform(-aug.brightness, aug.brightness, n).astype(np.float32) * 255.0
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out -= mean
    out *= factor[:, None, None, None]
    out += mean + offset[:, None, None, None]
    return np.clip(out, 0.0, 255.0, out=out)
