"""On-the-fly augmentation of training batches, in numpy and OpenCV (no TensorFlow).

Suited to a fixed camera and to small data sets (a few hundred images per class, where a
network from scratch otherwise learns the backgrounds by heart): the object moves, turns a
little and changes size, the light and the colours change, the scene is not turned upside
down. Each image of a batch gets, independently:

* a horizontal flip with probability 1/2 (``flip``; turn it off for text, digits, arrows);
* a random crop keeping between ``crop`` and all of each side, resized back (zoom in); with
  ``rotate``, ``shift`` or ``zoom_out`` set, one affine warp instead (borders reflected): zoom
  between ``zoom_out`` and ``1 / crop``, a turn of up to ``rotate`` degrees and a shift of up
  to ``shift`` of each side;
* a brightness offset of up to ``brightness`` x 255;
* a contrast factor in [1 - ``contrast``, 1 + ``contrast``] around the image's mean;
* a colour change: each channel's gain in [1 - ``color``, 1 + ``color``] and the saturation
  scaled by a factor in the same range.

:meth:`Augmentation.for_data` sizes these to the number of images per class.

The same generator state gives the same batch, so training is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import TrainingError

SMALL_DATA = 1000  # training images per class below which augmentation is stronger


@dataclass(frozen=True)
class Augmentation:
    """How strongly training images are varied; :meth:`none` turns everything off."""

    flip: bool = True
    crop: float = 0.85
    brightness: float = 0.15
    contrast: float = 0.2
    rotate: float = 0.0
    shift: float = 0.0
    zoom_out: float = 1.0
    color: float = 0.0

    def __post_init__(self) -> None:
        for name, value, low in (("crop", self.crop, 0.3), ("zoom_out", self.zoom_out, 0.3)):
            if not low <= value <= 1.0:
                raise TrainingError(f"{name.replace('_', '-')} (={value}) must be in "
                                    f"[{low}, 1] (the share of each side a random crop keeps "
                                    "or a zoom out shrinks to)")
        for name, value in (("brightness", self.brightness), ("contrast", self.contrast),
                            ("shift", self.shift), ("color", self.color)):
            if not 0.0 <= value <= 1.0:
                raise TrainingError(f"{name} (={value}) must be in [0, 1]")
        if not 0.0 <= self.rotate <= 180.0:
            raise TrainingError(f"rotate (={self.rotate}) must be in [0, 180] degrees")

    @classmethod
    def for_data(cls, images_per_class: int, flip: bool = True) -> Augmentation:
        """Sized to the data: below :data:`SMALL_DATA` training images per class the object
        also turns, shifts, shrinks and changes colour (a few hundred images are otherwise
        learned by heart); above it, crops, flips and light only."""
        if images_per_class >= SMALL_DATA:
            return cls(flip=flip)
        return cls(flip=flip, crop=0.8, rotate=15.0, shift=0.1, zoom_out=0.8, color=0.2)

    @classmethod
    def none(cls) -> Augmentation:
        return cls(flip=False, crop=1.0, brightness=0.0, contrast=0.0, rotate=0.0, shift=0.0,
                   zoom_out=1.0, color=0.0)

    @property
    def warps(self) -> bool:
        return self.crop < 1 or self.zoom_out < 1 or self.rotate > 0 or self.shift > 0

    def to_dict(self) -> dict[str, float | bool]:
        return {"flip": self.flip, "crop": self.crop, "brightness": self.brightness,
                "contrast": self.contrast, "rotate": self.rotate, "shift": self.shift,
                "zoom_out": self.zoom_out, "color": self.color}


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


def random_warp(rng: np.random.Generator, image: np.ndarray, aug: Augmentation) -> np.ndarray:
    """One affine warp: zoom (in to ``crop`` or out to ``zoom_out``), turn and shift."""
    height, width = image.shape[:2]
    zoom = float(np.exp(rng.uniform(np.log(aug.zoom_out), np.log(1.0 / aug.crop))))
    angle = float(rng.uniform(-aug.rotate, aug.rotate))
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, zoom)
    matrix[0, 2] += rng.uniform(-aug.shift, aug.shift) * width
    matrix[1, 2] += rng.uniform(-aug.shift, aug.shift) * height
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


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
        if aug.rotate > 0 or aug.shift > 0 or aug.zoom_out < 1:
            image = random_warp(rng, np.ascontiguousarray(image), aug)
        elif aug.crop < 1.0:
            image = random_crop(rng, image, aug.crop)
        out[i] = image
    n = len(images)
    if aug.color > 0:
        gain = rng.uniform(1.0 - aug.color, 1.0 + aug.color, (n, 1, 1, 3)).astype(np.float32)
        saturation = rng.uniform(1.0 - aug.color, 1.0 + aug.color, (n, 1, 1, 1))
        grey = out.mean(axis=3, keepdims=True)
        out = grey + (out * gain - grey) * saturation.astype(np.float32)
    factor = rng.uniform(1.0 - aug.contrast, 1.0 + aug.contrast, n).astype(np.float32)
    offset = rng.uniform(-aug.brightness, aug.brightness, n).astype(np.float32) * 255.0
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out -= mean
    out *= factor[:, None, None, None]
    out += mean + offset[:, None, None, None]
    return np.clip(out, 0.0, 255.0, out=out)
