"""A confusion matrix as text and as a PNG drawn with OpenCV (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

CELL = 44
MARGIN = 12
FONT = cv2.FONT_HERSHEY_SIMPLEX


def confusion_text(confusion: np.ndarray, classes: Sequence[str]) -> str:
    """Rows are the true classes, columns the predicted ones."""
    names = [str(c) for c in classes]
    width = max(6, *(len(n) for n in names), len(str(int(confusion.max(initial=0)))))
    header = " " * (width + 1) + " ".join(n[:width].rjust(width) for n in names)
    lines = ["true class (rows) / predicted (columns)", header]
    for name, row in zip(names, confusion, strict=True):
        cells = " ".join(str(int(v)).rjust(width) for v in row)
        lines.append(f"{name[:width].rjust(width)} {cells}")
    return "\n".join(lines)


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float,
          color: tuple[int, int, int], thickness: int = 1) -> None:
    cv2.putText(image, text, org, FONT, scale, color, thickness, cv2.LINE_AA)


def _cell_color(share: float) -> tuple[int, int, int]:
    """White to dark blue (BGR) as the row share goes from 0 to 1."""
    return (255 - int(95 * share), 255 - int(190 * share), 255 - int(215 * share))


def confusion_png(confusion: np.ndarray, classes: Sequence[str], title: str) -> bytes:
    """The matrix as a PNG: cells shaded by the share of their row, with counts; true classes
    down the left, predicted classes along the top."""
    n = len(classes)
    label_w = max(cv2.getTextSize(str(c), FONT, 0.45, 1)[0][0] for c in classes) + 2 * MARGIN
    top = 3 * MARGIN + 40
    image = np.full((top + n * CELL + MARGIN, label_w + n * CELL + MARGIN, 3), 255, np.uint8)
    _text(image, title, (MARGIN, MARGIN + 14), 0.5, (0, 0, 0))
    _text(image, "predicted ->", (label_w, MARGIN + 34), 0.4, (90, 90, 90))
    rows = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    for j, name in enumerate(classes):
        x = label_w + j * CELL + 4
        _text(image, str(name)[:6], (x, top - 6), 0.4, (0, 0, 0))
    for i, name in enumerate(classes):
        y = top + i * CELL
        _text(image, str(name), (MARGIN, y + CELL // 2 + 5), 0.45, (0, 0, 0))
        for j in range(n):
            x = label_w + j * CELL
            cv2.rectangle(image, (x, y), (x + CELL - 2, y + CELL - 2),
                          _cell_color(float(shares[i, j])), -1)
            ink = (255, 255, 255) if shares[i, j] > 0.55 else (0, 0, 0)
            count = str(int(confusion[i, j]))
            (tw, _), _ = cv2.getTextSize(count, FONT, 0.45, 1)
            _text(image, count, (x + (CELL - tw) // 2, y + CELL // 2 + 5), 0.45, ink)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("OpenCV could not encode the confusion matrix as PNG")
    return encoded.tobytes()
