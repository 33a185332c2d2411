"""The annotation on preview frames: top labels with scores, fps and latency (pure drawing)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.events import Prediction

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def fit_width(rgb: np.ndarray, width: int) -> np.ndarray:
    """``rgb`` as BGR scaled to ``width`` pixels wide (aspect kept)."""
    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else cv2.cvtColor(
        rgb, cv2.COLOR_GRAY2BGR)
    if bgr.shape[1] == width:
        return np.ascontiguousarray(bgr)
    return cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)


def _text(image: np.ndarray, text: str, y: int, scale: float) -> None:
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    cv2.rectangle(image, (4, y - h - 4), (12 + w, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (8, y), _FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)


def annotate(bgr: np.ndarray, predictions: Sequence[Prediction], fps: float,
             latency_ms: float) -> np.ndarray:
    """Draw the top labels (best first) and the numbers onto ``bgr`` in place; returns it."""
    scale = max(0.4, bgr.shape[1] / 800)
    step = int(28 * scale / 0.6)
    y = step
    for p in predictions[:3] or ():
        _text(bgr, f"{p.label or p.index}  {p.score:.2f}", y, scale * 1.2)
        y += step
    if not predictions:
        _text(bgr, "(below threshold)", y, scale)
    _text(bgr, f"{fps:.1f} fps  {latency_ms:.1f} ms", bgr.shape[0] - 8, scale)
    return bgr
