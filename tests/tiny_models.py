"""Tiny and odd int8 models nobody here tuned the planner on, made with TensorFlow.

* ``hello``: TFLM's hello_world: 1 -> 16 -> 16 -> 1 fully connected, int8 in and out (~2.5 KB);
* ``keyword``: a micro_speech-like keyword spotter: a 49x40 spectrogram, one strided 10x8
  convolution, a fully connected layer and softmax over 4 words;
* ``single-op``: one FULLY_CONNECTED and nothing else;
* ``float-io``: hello_world with float input and output, so the graph starts with QUANTIZE and
  ends with DEQUANTIZE.

Built once per source version and cached outside the repo (``tests/cache.py``), keyed by this
file's hash and the TensorFlow version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.outputs import atomic_write_bytes
from tests.cache import artefact_cache, artefact_lock

NAMES = ("hello", "keyword", "single-op", "float-io")


def tiny_models(tf: Any) -> dict[str, Path]:
    """Every model of :data:`NAMES` as a .tflite file (built on the first call, then cached)."""
    key = hashlib.sha256(Path(__file__).read_bytes() + tf.__version__.encode()).hexdigest()[:16]
    folder = artefact_cache("tiny-models") / key
    paths = {name: folder / f"{name}.tflite" for name in NAMES}
    with artefact_lock(folder):
        if not all(p.is_file() for p in paths.values()):
            for name, content in _build_all(tf).items():
                atomic_write_bytes(paths[name], content)
    return paths


def _build_all(tf: Any) -> dict[str, bytes]:
    tf.keras.utils.set_random_seed(3)
    layers = tf.keras.layers

    def dense_stack(inputs: Any) -> Any:
        hidden = layers.Dense(16, activation="relu")(inputs)
        return layers.Dense(1)(layers.Dense(16, activation="relu")(hidden))

    scalar = layers.Input((1,))
    spectrogram = layers.Input((49, 40, 1))
    features = layers.Conv2D(8, (10, 8), strides=2, padding="same",
                             activation="relu")(spectrogram)
    words = layers.Dense(4, activation="softmax")(layers.Flatten()(features))
    vector = layers.Input((6,))
    return {
        "hello": _int8(tf, tf.keras.Model(scalar, dense_stack(scalar)), (1,)),
        "keyword": _int8(tf, tf.keras.Model(spectrogram, words), (49, 40, 1)),
        "single-op": _int8(tf, tf.keras.Model(vector, layers.Dense(3)(vector)), (6,)),
        "float-io": _int8(tf, tf.keras.Model(scalar, dense_stack(scalar)), (1,),
                          int8_io=False),
    }


def _int8(tf: Any, model: Any, shape: tuple[int, ...], int8_io: bool = True) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)

    def samples() -> Iterator[list[np.ndarray]]:
        for _ in range(32):
            yield [rng.uniform(-1, 1, (1, *shape)).astype(np.float32)]

    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())
