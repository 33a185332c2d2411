"""The demo: a synthetic printed-digit scene and the small int8 model the project trained on it.

The model and its labels ship inside the package, so the demo needs no camera, no download and
no TensorFlow. ``tools/train_demo_model.py`` rebuilds them; ``docs/demo_model.md`` says how.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def model_path() -> Path:
    """Path of the shipped int8 demo model (``demo_model.tflite``)."""
    return _HERE / "demo_model.tflite"


def labels_path() -> Path:
    """Path of the demo model's labels file, one label per line in class-index order."""
    return _HERE / "labels.txt"


__all__ = ["labels_path", "model_path"]
