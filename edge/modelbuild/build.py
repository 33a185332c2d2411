"""Build MobileNetV2 classifiers that take raw camera pixels (0..255) as input."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from edge import pip_install
from edge.errors import BackendError, TrainingError
from edge.nativelog import filtered_native_stderr

log = logging.getLogger(__name__)

ALPHAS: tuple[float, ...] = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MIN_RESOLUTION = 32  # Keras' MobileNetV2 minimum; ImageNet weights exist for 96-224
INSTALL_HINT = pip_install("build")


def import_tensorflow() -> ModuleType:
    """Import TensorFlow, or raise :class:`BackendError` saying which extra to install."""
    try:
        with filtered_native_stderr():  # oneDNN and cpu_feature_guard banners
            import tensorflow as tf
    except ImportError as e:
        raise BackendError(
            f"building and quantizing models needs TensorFlow, which is not installed; "
            f"run {INSTALL_HINT}"
        ) from e
    return tf


def validate_build_args(alpha: float, resolution: int, classes: int) -> None:
    """Raise :class:`TrainingError` naming the bad value and the allowed range."""
    if alpha not in ALPHAS:
        allowed = ", ".join(str(a) for a in ALPHAS)
        raise TrainingError(f"alpha (={alpha}) must be one of {allowed}")
    if resolution < MIN_RESOLUTION:
        raise TrainingError(f"resolution (={resolution}) must be >= {MIN_RESOLUTION}")
    if classes < 2:
        raise TrainingError(f"classes (={classes}) must be >= 2")


BACKBONE = "backbone"
WEIGHTS_HINT = ("on a machine with network, download {url} and pass --weights PATH to that "
                "file (or copy it into ~/.keras/models/); or train from scratch with "
                "--weights none")


IMAGENET_SIZES = (96, 128, 160, 192, 224)  # Keras has no-top weights for these sides


def imagenet_file(alpha: float, resolution: int) -> Path:
    """Where Keras keeps the ImageNet weights of MobileNetV2 ``alpha`` without top for
    ``resolution`` (other sides use the 224 file)."""
    rows = resolution if resolution in IMAGENET_SIZES else 224
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return home / "models" / (f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
                              f"{float(alpha)}_{rows}_no_top.h5")


def imagenet_reachable(timeout: float = 3.0) -> bool:
    """Whether Keras' download location for the MobileNetV2 weights answers within
    ``timeout`` seconds (a HEAD request, nothing downloaded)."""
    import urllib.request

    try:
        from keras.src.applications.mobilenet_v2 import BASE_WEIGHT_PATH
    except ImportError:
        return False
    try:
        request = urllib.request.Request(BASE_WEIGHT_PATH, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except Exception as e:  # any refusal, timeout, DNS or HTTP error: not reachable
        log.debug("ImageNet weights not reachable: %s", e)
        return "HTTP Error" in str(e)  # the server answered (e.g. 403 to HEAD): reachable


def check_imagenet_file(path: Path) -> None:
    """Keep the SHA-256 of a downloaded weights file beside it (``.sha256``) on first use and
    check it on every later one: a truncated or altered cache file is one error line.

    Raises:
        TrainingError: the file no longer matches the checksum recorded when it came.
    """
    import hashlib

    if not path.is_file():
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    record = path.with_name(path.name + ".sha256")
    if not record.is_file():
        record.write_text(digest + "\n")
        return
    if record.read_text().split()[0] != digest:
        raise TrainingError(f"{path}: cached ImageNet weights changed since they were "
                            f"downloaded (SHA-256 differs from {record.name}); delete both "
                            "files to download them again")


def _download_url(error: BaseException) -> str:
    match = re.search(r"https?://\S+?\.h5", str(error))
    return match.group(0) if match else "the Keras MobileNetV2 weights file"


def _keras_backbone(keras: Any, alpha: float, resolution: int, weights: str | None) -> Any:
    chatter = io.StringIO()  # Keras prints "Downloading data from ..." on stdout
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "weights for 224x224 will be loaded" at odd sizes
            return keras.applications.MobileNetV2(
                input_shape=(resolution, resolution, 3), alpha=alpha, include_top=False,
                weights=weights, name=BACKBONE)
    finally:
        log.debug("keras: %s", chatter.getvalue().strip())


def _backbone(keras: Any, alpha: float, resolution: int, weights: str | None) -> Any:
    """MobileNetV2 without its top; ``weights``: None, ``imagenet`` or a path (see below)."""
    if weights is not None and weights != "imagenet" and weights.endswith(".keras"):
        base = _keras_backbone(keras, alpha, resolution, None)
        copy_backbone(Path(weights), base, alpha)
        return base
    if weights is not None and weights.endswith(".tflite"):
        from edge.modelbuild.weights import load_tflite_backbone

        base = _keras_backbone(keras, alpha, resolution, None)
        load_tflite_backbone(Path(weights), base, alpha)
        return base
    try:
        if weights == "imagenet":
            check_imagenet_file(imagenet_file(alpha, resolution))
        base = _keras_backbone(keras, alpha, resolution, weights)
        if weights == "imagenet":
            check_imagenet_file(imagenet_file(alpha, resolution))
        return base
    except TrainingError:
        raise
    except Exception as e:  # Keras' get_file raises a bare Exception when a download fails
        if weights == "imagenet" and "fetch failure" in str(e):
            raise TrainingError(
                f"cannot download the ImageNet weights for MobileNetV2 {alpha:g}/{resolution} "
                f"({one_line(e)}); " + WEIGHTS_HINT.format(url=_download_url(e))) from e
        if weights is None or weights == "imagenet":
            raise TrainingError(f"Keras cannot build MobileNetV2 {alpha:g}/{resolution}: "
                                f"{one_line(e)}") from e
        raise TrainingError(f"{weights}: not the weights of MobileNetV2 {alpha:g} without its "
                            f"top (pass the --alpha they were trained with): {one_line(e)}") from e


def copy_backbone(source: Path, base: Any, alpha: float) -> None:
    """Load the backbone of a ``.keras`` classifier (e.g. from ``edge-model train``) into ``base``.

    Raises:
        ModelError: ``source`` is not a loadable Keras model.
        TrainingError: it has no MobileNetV2 backbone of the same width.
    """
    from edge.modelbuild.keras_file import load_keras_model

    model = load_keras_model(source)
    nested = [layer for layer in model.layers if hasattr(layer, "layers")
              and (layer.name == BACKBONE or layer.name.startswith("mobilenetv2"))]
    if not nested:
        raise TrainingError(f"{source}: has no MobileNetV2 backbone layer to start from")
    try:
        base.set_weights(nested[0].get_weights())
    except ValueError as e:
        raise TrainingError(f"{source}: its backbone is not MobileNetV2 {alpha:g} (pass the "
                            f"--alpha it was trained with): {one_line(e)}") from e


def one_line(error: BaseException) -> str:
    """The first line of an exception's message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def build_mobilenetv2(
    alpha: float, resolution: int, classes: int, *, weights: str | None = None,
    dropout: float = 0.2,
) -> Any:
    """Build a Keras MobileNetV2 classifier whose input is raw RGB pixels 0..255.

    The network is ``Rescaling -> MobileNetV2 without top (layer "backbone") -> global average
    pooling -> dropout -> dense softmax``. The ``Rescaling(1/127.5, offset=-1)`` layer maps
    pixels to MobileNetV2's [-1, 1], so after int8 quantization the input has scale ~1 and zero
    point ~-128 and the runtime feeds resized camera frames unchanged. The head is new, so any
    number of classes works with any weights.

    Args:
        alpha: width multiplier, one of :data:`ALPHAS`.
        resolution: square input side in pixels, >= :data:`MIN_RESOLUTION`.
        classes: number of output classes (softmax).
        weights: ``None`` for random initialisation, ``"imagenet"`` (Keras downloads them once
            into ~/.keras/models), or the path of a Keras weights file of MobileNetV2 without
            its top (``*_no_top.h5``), of a ``.keras`` model from edge-model, or of a quantized
            MobileNetV2 ``.tflite`` (:mod:`edge.modelbuild.weights`).
        dropout: dropout rate before the classifier.

    Returns:
        An uncompiled ``keras.Model`` named ``mobilenetv2_<alpha>_<resolution>``.

    Raises:
        TrainingError: an argument is out of range, Keras refused it, or the weights could not
            be downloaded or read.
        BackendError: TensorFlow is not installed.
    """
    validate_build_args(alpha, resolution, classes)
    keras = import_tensorflow().keras
    inputs = keras.Input((resolution, resolution, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    base = _backbone(keras, alpha, resolution, weights)
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    name = f"mobilenetv2_{alpha:g}_{resolution}"
    model = keras.Model(inputs, outputs, name=name)
    log.debug("built %s with %d parameters", name, model.count_params())
    return model


def build_file(
    alpha: float, resolution: int, classes: int, output: Path, *, weights: str | None = None
) -> Any:
    """Build a model with :func:`build_mobilenetv2` and save it to ``output`` (``.keras``)."""
    from edge.modelbuild.keras_file import check_output, save_keras

    check_output(output)
    model = build_mobilenetv2(alpha, resolution, classes, weights=weights)
    save_keras(model, output)
    return model
