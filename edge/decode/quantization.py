"""Quantized output values to real ones, once for every decoder. Pure numpy."""

from __future__ import annotations

import numpy as np


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values ``scale * (q - zero_point)`` as float32, shape kept.

    The integers are widened to int64 before the zero point is subtracted, so uint8 outputs with
    a non-zero zero point do not wrap around. A ``scale`` of 0 means the output is not quantized.
    """
    if not scale:
        return np.asarray(values).astype(np.float32, copy=False)
    shifted = np.asarray(values).astype(np.int64) - np.int64(zero_point)
    return shifted.astype(np.float32) * np.float32(scale)


def quantize_threshold(threshold: float, scale: float, zero_point: int) -> float:
    """The raw value a score must exceed to be above ``threshold`` after dequantization."""
    return threshold / scale + zero_point if scale else threshold
