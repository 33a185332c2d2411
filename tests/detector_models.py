"""Small trained centroid detectors (FOMO-style) for the firmware tests, made with TensorFlow.

Each is MobileNetV2 0.35 cut at stride 8 with the per-cell head of
:mod:`edge.modelbuild.detect`, trained from scratch for a few epochs (about a minute on two
cores; centroid F1 about 0.8 on held-out images) on shapes drawn by
``tools/make_detect_data.py``, quantized to int8 on such images and packed the way ``edge-model
quantize`` packs a detector (labels ``background + classes`` and a training record with
``"task": "detect"``). Besides the square one :func:`build_centroid_model` makes, a non-square
one (128x96, four classes) is built from the same parts here. Built once per source version
and cached outside the repo (``$XDG_CACHE_HOME/edge-tests``), keyed by the hash of this file,
the modules it builds with and the TensorFlow version.

:func:`scenes` gives held-out images of the same kind (another seed) as int8 input tensors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.outputs import atomic_write_bytes
from tests.cache import artefact_cache
from tests.conftest import ROOT

KINDS = ("disc", "cross", "square", "triangle", "ring")
SOURCES = (Path(__file__), ROOT / "edge" / "modelbuild" / "detect.py",
           ROOT / "tools" / "make_detect_data.py", ROOT / "edge" / "modelbuild" / "quantize.py")


@dataclass(frozen=True)
class DetectorShape:
    """One test detector: input width and height, classes, and how it is trained."""

    name: str
    width: int
    height: int
    classes: int
    images: int = 400
    epochs: int = 12

    @property
    def kinds(self) -> list[str]:
        return list(KINDS[:self.classes])


OBJECT_WEIGHT = 20.0
SQUARE = DetectorShape("square-96-2", 96, 96, 2)
ODD = DetectorShape("odd-128x96-4", 128, 96, 4)
SHAPES = (SQUARE, ODD)


def detector_model(tf: Any, shape: DetectorShape) -> Path:
    """The cached ``.tflite`` of ``shape`` (built, trained and quantized now the first time)."""
    digest = hashlib.sha256(tf.__version__.encode())
    for source in SOURCES:
        digest.update(source.read_bytes())
    path = artefact_cache("detector-models") / digest.hexdigest()[:16] / f"{shape.name}.tflite"
    if not path.is_file():
        atomic_write_bytes(path, _build(tf, shape))
    return path


def scene_images(shape: DetectorShape, count: int, seed: int) -> list[np.ndarray]:
    """``count`` RGB images of shapes on noisy backgrounds at the model's input size."""
    from tools.make_detect_data import make_image

    rng = np.random.default_rng(seed)
    low = max(3, min(shape.width, shape.height) // 16)
    return [cv2.cvtColor(make_image(rng, shape.kinds, shape.width, shape.height,
                                    (low, 2 * low))[0], cv2.COLOR_BGR2RGB)
            for _ in range(count)]


def scenes(model: Path, shape: DetectorShape, count: int, seed: int = 99) -> list[np.ndarray]:
    """Held-out images as the model's int8 input tensors ``[1, H, W, 3]``."""
    from edge.model import read_model

    tensor = read_model(model).input_tensors[0]
    assert tensor.quantization is not None
    scale, zero = tensor.quantization.scale[0], tensor.quantization.zero_point[0]
    return [np.clip(np.round(image.astype(np.float32) / scale + zero), -128, 127)
            .astype(np.int8)[None] for image in scene_images(shape, count, seed)]


def _build(tf: Any, shape: DetectorShape) -> bytes:
    from edge.model.labels import with_embedded_files
    from edge.modelbuild.keras_file import METADATA_MEMBER
    from edge.modelbuild.quantize import check_quantization, quantize_keras

    tf.keras.utils.set_random_seed(3)
    net = _keras_model(tf, shape)
    pixels, targets = _training_data(shape)
    from edge.modelbuild.detect import cell_weights

    for norm in _batch_norms(net, tf):
        # Keras' MobileNetV2 averages its batch statistics with momentum 0.999: after a few
        # hundred steps from scratch the inference statistics are still the initial ones and
        # every cell gives the same answer. 0.9 follows the training.
        norm.momentum = 0.9
    net.compile(optimizer=tf.keras.optimizers.Adam(3e-3),
                loss=tf.keras.losses.SparseCategoricalCrossentropy())
    net.fit(pixels.astype(np.float32), targets, sample_weight=cell_weights(targets, OBJECT_WEIGHT),
            batch_size=16, epochs=shape.epochs, verbose=0)
    frames = scene_images(shape, 48, seed=7)
    flatbuffer = quantize_keras(net, frames)
    check_quantization(flatbuffer, frames)
    classes = shape.kinds
    record = {"classes": ["background", *classes], "input_size": [shape.width, shape.height],
              "task": "detect"}
    return with_embedded_files(flatbuffer, ["background", *classes],
                               {METADATA_MEMBER: json.dumps(record).encode()})


def _batch_norms(layer: Any, tf: Any) -> Any:
    for inner in getattr(layer, "layers", ()):
        if isinstance(inner, tf.keras.layers.BatchNormalization):
            yield inner
        yield from _batch_norms(inner, tf)


def _keras_model(tf: Any, shape: DetectorShape) -> Any:
    """:func:`edge.modelbuild.detect.build_centroid_model`, or its parts at a non-square size."""
    from edge.modelbuild import detect

    if shape.width == shape.height:
        return detect.build_centroid_model(0.35, shape.width, shape.classes)
    keras = tf.keras
    base = keras.applications.MobileNetV2(input_shape=(shape.height, shape.width, 3), alpha=0.35,
                                          include_top=False, weights=None)
    cut = keras.Model(base.input, base.get_layer(detect.CUT_LAYER).output, name="backbone")
    inputs = keras.Input((shape.height, shape.width, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    x = cut(x)
    x = keras.layers.Conv2D(detect.HEAD_FILTERS, 1, activation="relu", name="head")(x)
    x = keras.layers.Conv2D(shape.classes + 1, 1, name="cells")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="cell_scores")(x))


def _training_data(shape: DetectorShape) -> tuple[np.ndarray, np.ndarray]:
    from edge.modelbuild.detect import STRIDE
    from tools.make_detect_data import make_image

    rng = np.random.default_rng(1)
    low = max(3, min(shape.width, shape.height) // 16)
    grid_h, grid_w = shape.height // STRIDE, shape.width // STRIDE
    pixels = np.zeros((shape.images, shape.height, shape.width, 3), np.uint8)
    targets = np.zeros((shape.images, grid_h, grid_w), np.int32)
    for n in range(shape.images):
        image, labels = make_image(rng, shape.kinds, shape.width, shape.height, (low, 2 * low))
        pixels[n] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        for label, cx, cy, _w, _h in labels:
            targets[n, min(int(cy * grid_h), grid_h - 1), min(int(cx * grid_w), grid_w - 1)] = \
                label + 1
    return pixels, targets
