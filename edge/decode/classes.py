"""One row of class scores: dequantize, top-k, threshold. Pure numpy."""

from __future__ import annotations

import numpy as np


def dequantize_flat(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values ``scale * (q - zero_point)`` as float32, flattened.

    The integers are widened to int64 before the zero point is subtracted, so uint8 outputs with
    a non-zero zero point do not wrap around. A ``scale`` of 0 means the output is not quantized.
    """
    flat = np.asarray(values).reshape(-1)
    if not scale:
        return flat.astype(np.float32)
    shifted = flat.astype(np.int64) - np.int64(zero_point)
    return shifted.astype(np.float32) * np.float32(scale)


def top_k(scores: np.ndarray, k: int, threshold: float = 0.0) -> list[tuple[int, float]]:
    """The ``k`` best ``(index, score)`` pairs with ``score >= threshold``, best first.

    Equal scores keep index order, so results are deterministic.
    """
    if k <= 0 or scores.size == 0:
        return []
    flat = scores.reshape(-1)
    order = np.argsort(-flat, kind="stable")[:k]
    return [(int(i), float(flat[i])) for i in order if flat[i] >= threshold]
