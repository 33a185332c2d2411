"""Build MobileNetV2 classifiers that take raw camera pixels (0..255) as input."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Any

from edge import pip_install
from edge.errors import BackendError, TrainingError
from edge.nativelog import filtered_native_stderr

log = logging.getLogger(__name__)

ALPHAS: tuple[float, ...] = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MIN_RESOLUTION = 96
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


def build_mobilenetv2(
    alpha: float, resolution: int, classes: int, *, weights: str | None = None
) -> Any:
    """Build a Keras MobileNetV2 classifier whose input is raw RGB pixels 0..255.

    A ``Rescaling(1/127.5, offset=-1)`` layer inside the model maps pixels to MobileNetV2's
    [-1, 1], so after int8 quantization the input has scale ~1 and zero point ~-128 and the
    runtime feeds resized camera frames unchanged.

    Args:
        alpha: width multiplier, one of :data:`ALPHAS`.
        resolution: square input side in pixels, >= :data:`MIN_RESOLUTION`.
        classes: number of output classes (softmax).
        weights: ``None`` for random initialisation, or ``"imagenet"`` (needs a download and
            ``classes == 1000`` as Keras requires).

    Returns:
        An uncompiled ``keras.Model`` named ``mobilenetv2_<alpha>_<resolution>``.

    Raises:
        TrainingError: an argument is out of range or Keras refused it.
        BackendError: TensorFlow is not installed.
    """
    validate_build_args(alpha, resolution, classes)
    tf = import_tensorflow()
    keras = tf.keras
    inputs = keras.Input((resolution, resolution, 3), name="pixels")
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="to_unit_range")(inputs)
    try:
        base = keras.applications.MobileNetV2(
            input_shape=(resolution, resolution, 3),
            alpha=alpha,
            include_top=True,
            weights=weights,
            classes=classes,
            classifier_activation="softmax",
        )
    except ValueError as e:
        raise TrainingError(f"Keras cannot build MobileNetV2 with these settings: {e}") from e
    outputs = base(scaled)
    name = f"mobilenetv2_{alpha:g}_{resolution}"
    log.debug("built %s with %d parameters", name, base.count_params())
    return keras.Model(inputs, outputs, name=name)


def save_keras(model: Any, path: Path) -> None:
    """Save ``model`` as a ``.keras`` file via a temporary file and rename."""
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        tmp.replace(path)
    except OSError as e:
        raise TrainingError(f"{path}: cannot write the model: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)


def build_file(
    alpha: float, resolution: int, classes: int, output: Path, *, weights: str | None = None
) -> Any:
    """Build a model with :func:`build_mobilenetv2` and save it to ``output`` (``.keras``)."""
    if output.suffix != ".keras":
        raise TrainingError(f"{output}: the output must end in .keras")
    if not output.parent.is_dir():
        raise TrainingError(f"{output}: folder {output.parent} does not exist")
    model = build_mobilenetv2(alpha, resolution, classes, weights=weights)
    save_keras(model, output)
    return model
