"""Models the patch tests build: Keras MobileNetV2 at other widths and resolutions, int8 PTQ.

Keras' MobileNetV2 writes explicit ZeroPadding2D + VALID convolutions before every stride-2
layer (the converter keeps them as PAD operators), the shared TF2 file uses SAME padding:
together they cover both ways a converter pads. Built models are cached (tests/cache.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from edge.outputs import atomic_write_bytes
from tests.cache import artefact_cache

RECIPE = "keras-mobilenetv2-ptq-v3"


def mobilenet_v2(alpha: float, resolution: int, seed: int = 0) -> Path:
    """An int8 MobileNetV2 (random weights, seeded) at ``alpha`` / ``resolution``, cached."""
    key = hashlib.sha256(f"{RECIPE}:{alpha}:{resolution}:{seed}".encode()).hexdigest()[:16]
    path = artefact_cache("patch-models") / f"mnv2_{alpha}_{resolution}_{key}.tflite"
    if path.is_file():
        return path
    import tensorflow as tf

    from edge.modelbuild.quantize import quantize_keras

    tf.keras.utils.set_random_seed(seed)
    base = tf.keras.applications.MobileNetV2(input_shape=(resolution, resolution, 3),
                                             alpha=alpha, weights=None, classes=10)
    inputs = tf.keras.Input((resolution, resolution, 3))
    net = tf.keras.Model(inputs, base(tf.keras.layers.Rescaling(1 / 127.5, -1.0)(inputs)))
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
              for _ in range(4)]
    # Untrained batch norm lets activations vanish layer after layer (scales of 1e-9 that TFLM
    # refuses): one training-mode pass with momentum 0 sets each layer's statistics.
    for layer in base.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.0
    net(np.stack(frames).astype(np.float32), training=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, quantize_keras(net, frames))
    return path


def explicit_pad_net(resolution: int, seed: int = 1) -> Path:
    """PyTorch-style padding: symmetric ZeroPadding2D + VALID convolutions (stride 2 included),
    which the converter keeps as PAD operators, and a residual block; int8, cached."""
    key = hashlib.sha256(f"{RECIPE}:pad:{resolution}:{seed}".encode()).hexdigest()[:16]
    path = artefact_cache("patch-models") / f"padnet_{resolution}_{key}.tflite"
    if path.is_file():
        return path
    import tensorflow as tf

    from edge.modelbuild.quantize import quantize_keras

    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    inputs = tf.keras.Input((resolution, resolution, 3))
    x = layers.Rescaling(1 / 127.5, -1.0)(inputs)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(16, 3, strides=2, activation="relu6")(x)
    y = layers.ZeroPadding2D(((2, 1), (1, 2)))(x)
    y = layers.DepthwiseConv2D(4, activation="relu6")(y)
    y = layers.Conv2D(16, 1)(y)
    x = layers.Add()([x, y])
    x = layers.ZeroPadding2D(1)(x)
    x = layers.DepthwiseConv2D(3, strides=2, activation="relu6")(x)
    x = layers.Conv2D(24, 1, activation="relu6")(x)
    x = layers.Dense(5)(layers.GlobalAveragePooling2D()(x))
    net = tf.keras.Model(inputs, layers.Softmax()(x))
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
              for _ in range(4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, quantize_keras(net, frames))
    return path


def nchw_input_net(resolution: int, seed: int = 2) -> Path:
    """A PyTorch-style NCHW input: TRANSPOSE to NHWC first (not tileable), then convolutions
    with explicit PADs and a residual; int8, cached."""
    key = hashlib.sha256(f"{RECIPE}:nchw:{resolution}:{seed}".encode()).hexdigest()[:16]
    path = artefact_cache("patch-models") / f"nchw_{resolution}_{key}.tflite"
    if path.is_file():
        return path
    import tensorflow as tf

    from edge.modelbuild.quantize import quantize_keras

    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers
    inputs = tf.keras.Input((3, resolution, resolution))
    x = layers.Permute((2, 3, 1))(inputs)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Conv2D(16, 3, strides=2, activation="relu6")(x)
    y = layers.Conv2D(32, 1, activation="relu6")(x)
    y = layers.ZeroPadding2D(1)(y)
    y = layers.DepthwiseConv2D(3, activation="relu6")(y)
    x = layers.Add()([x, layers.Conv2D(16, 1)(y)])
    x = layers.Conv2D(24, 3, strides=2, padding="same", activation="relu6")(x)
    x = layers.Dense(3)(layers.GlobalAveragePooling2D()(x))
    net = tf.keras.Model(inputs, layers.Softmax()(x))
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (3, resolution, resolution), dtype=np.uint8)
              for _ in range(4)]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, quantize_keras(net, frames))
    return path


def torch_style_mobilenet_v2(resolution: int, width: float = 0.35, seed: int = 3) -> Path:
    """MobileNetV2's first stages as PyTorch writes them (torchvision's layer order): every 3x3
    convolution preceded by a symmetric ZeroPadding2D(1) and run VALID (on even sizes stride 2
    then reads the image one pixel higher and further left than TensorFlow's SAME does), bias-free
    convolutions with batch norm and a separate ReLU6, the residual ADD as ``conv(x) + x``;
    int8, cached."""
    key = hashlib.sha256(f"{RECIPE}:torch:{resolution}:{width}:{seed}".encode()).hexdigest()[:16]
    path = artefact_cache("patch-models") / f"torchnet_{resolution}_{width}_{key}.tflite"
    if path.is_file():
        return path
    import tensorflow as tf

    from edge.modelbuild.quantize import quantize_keras

    tf.keras.utils.set_random_seed(seed)
    layers = tf.keras.layers

    def conv_bn(x: Any, filters: int, kernel: int, stride: int = 1, depthwise: bool = False,
                relu: bool = True) -> Any:
        if kernel > 1:
            x = layers.ZeroPadding2D(kernel // 2)(x)
        if depthwise:
            x = layers.DepthwiseConv2D(kernel, stride, use_bias=False)(x)
        else:
            x = layers.Conv2D(filters, kernel, stride, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU(6.0)(x) if relu else x

    def channels(c: int) -> int:
        return max(8, int(c * width + 4) // 8 * 8)

    inputs = tf.keras.Input((resolution, resolution, 3))
    x = layers.Rescaling(1 / 127.5, -1.0)(inputs)
    x = conv_bn(x, channels(32), 3, 2)
    have = channels(32)
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 1, 2)):
        out = channels(c)
        for i in range(n):
            y = conv_bn(x, have * t, 1) if t != 1 else x
            y = conv_bn(y, have * t, 3, s if i == 0 else 1, depthwise=True)
            y = conv_bn(y, out, 1, relu=False)
            x = layers.Add()([y, x]) if (i > 0 and have == out) else y
            have = out
    x = layers.Dense(4)(layers.GlobalAveragePooling2D()(x))
    net = tf.keras.Model(inputs, layers.Softmax()(x))
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (resolution, resolution, 3), dtype=np.uint8)
              for _ in range(4)]
    for layer in net.layers:  # statistics from one pass, as in mobilenet_v2()
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.0
    net(np.stack(frames).astype(np.float32) / 127.5 - 1, training=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, quantize_keras(net, frames))
    return path
