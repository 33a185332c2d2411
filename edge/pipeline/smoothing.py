"""Settling a flickering label: a moving mean or median of class scores over the last N frames.

Pure: predictions in, predictions out. Classes missing from a frame's candidates count as a
score of 0 for that frame, so ask the classifier for a few more candidates than you will show.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from edge.events import Prediction, Scored

METHODS = ("mean", "median")


class ScoreSmoother:
    """Moving mean or median of each class's score over a window of frames.

    Args:
        window: frames to combine; 1 passes predictions through unchanged.
        method: ``mean`` or ``median``.
    """

    def __init__(self, window: int = 1, method: str = "mean") -> None:
        if window < 1:
            raise ValueError(f"smoothing window (={window}) must be >= 1")
        if method not in METHODS:
            raise ValueError(f"smoothing method (={method!r}) must be one of {', '.join(METHODS)}")
        self.window = window
        self.method = method
        self._history: deque[dict[int, float]] = deque(maxlen=window)
        self._labels: dict[int, str] = {}

    def update(self, candidates: Sequence[Scored]) -> list[Prediction]:
        """Add one frame's candidates; return every class seen in the window, best first."""
        scores = {int(c.index): float(c.score) for c in candidates}
        self._labels.update((int(c.index), str(c.label)) for c in candidates)
        self._history.append(scores)
        classes = sorted(set().union(*self._history))
        if not classes:
            return []
        table = np.array([[frame.get(i, 0.0) for i in classes] for frame in self._history])
        combined = table.mean(axis=0) if self.method == "mean" else np.median(table, axis=0)
        order = sorted(range(len(classes)), key=lambda k: (-combined[k], classes[k]))
        return [Prediction(classes[k], self._labels[classes[k]], float(combined[k]))
                for k in order]

    def reset(self) -> None:
        self._history.clear()


def select(predictions: Sequence[Prediction], top_k: int, threshold: float
           ) -> tuple[Prediction, ...]:
    """The best ``top_k`` predictions scoring at least ``threshold``."""
    return tuple(p for p in predictions if p.score >= threshold)[:top_k]
