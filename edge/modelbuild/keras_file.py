"""``.keras`` files: loading, atomic saving, and the training record edge keeps inside them.

A ``.keras`` file is a zip archive (``config.json``, ``metadata.json``, ``model.weights.h5``).
``edge-model train`` adds one more member, ``edge_training.json``, which Keras ignores when it
loads the model: the classes, the input size, the data folder and its split, and the training
history. ``edge-model quantize`` reads it to calibrate on the training split and to embed the
labels; ``edge-model evaluate`` reads it to find the held-out split.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from edge.errors import ModelError, TrainingError
from edge.model.labels import TRAINING_RECORD_MEMBER as METADATA_MEMBER
from edge.modelbuild.build import import_tensorflow
from edge.outputs import atomic_path

METADATA_FORMAT = "edge-training/1"
MAX_METADATA_BYTES = 16 * 1024 * 1024


def check_output(output: Path, suffix: str = ".keras") -> None:
    """Refuse an output path with the wrong suffix or in a missing folder, before any work."""
    if output.suffix != suffix:
        raise TrainingError(f"{output}: the output must end in {suffix}")
    if not output.parent.is_dir():
        raise TrainingError(f"{output}: folder {output.parent} does not exist")


def save_keras(model: Any, path: Path, metadata: dict[str, Any] | None = None) -> None:
    """Save ``model`` (and ``metadata`` as :data:`METADATA_MEMBER`) to ``path`` atomically.

    The model is written to a temporary file beside ``path`` and renamed over it, so a reader
    never sees half a model and an interrupted save leaves no file behind.
    """
    try:
        with atomic_path(path, suffix=".keras") as tmp:
            model.save(tmp, overwrite=True)
            if metadata is not None:
                record = {"format": METADATA_FORMAT, **metadata}
                with zipfile.ZipFile(tmp, "a") as archive:
                    archive.writestr(METADATA_MEMBER, json.dumps(record, indent=1))
    except OSError as e:
        raise TrainingError(f"{path}: cannot write the model: {e.strerror or e}") from e


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The training record inside a ``.keras`` file, or None when it has none."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(METADATA_MEMBER)
            if info.file_size > MAX_METADATA_BYTES:
                return None
            record = json.loads(archive.read(info).decode("utf-8"))
    except (KeyError, OSError, zipfile.BadZipFile, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or record.get("format") != METADATA_FORMAT:
        return None
    return record


def load_keras_model(path: Path) -> Any:
    """Load a ``.keras`` image model, or raise :class:`ModelError` saying it is not one."""
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a Keras model (.keras files are zip archives)")
    tf = import_tensorflow()
    try:
        model = tf.keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises ValueError, OSError, zipfile errors...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: not a Keras model (.keras) that can be loaded: {first}") from e
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else ()
    if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[2] is None:
        raise ModelError(f"{path}: input shape {shape} is not (batch, height, width, 3)")
    return model


def model_input_size(model: Any) -> tuple[int, int]:
    """The (width, height) a Keras image model expects."""
    shape = model.inputs[0].shape
    return int(shape[2]), int(shape[1])
