"""One row of class scores: dequantize, top-k, threshold. Pure numpy."""

from __future__ import annotations

import numpy as np

from edge.decode.quantization import dequantize


def dequantize_flat(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """:func:`edge.decode.quantization.dequantize`, flattened (one row of scores)."""
    return dequantize(values, scale, zero_point).reshape(-1)


def top_k(scores: np.ndarray, k: int, threshold: float = 0.0) -> list[tuple[int, float]]:
    """The ``k`` best ``(index, score)`` pairs with ``score >= threshold``, best first.

    Equal scores keep index order, so results are deterministic.
    """
    if k <= 0 or scores.size == 0:
        return []
    flat = scores.reshape(-1)
    order = np.argsort(-flat, kind="stable")[:k]
    return [(int(i), float(flat[i])) for i in order if flat[i] >= threshold]
