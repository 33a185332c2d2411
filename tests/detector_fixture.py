"""Small trained centroid detectors for tests: data, ``.keras`` and int8 ``.tflite``.

Made by the real commands (``tools/make_detect_data.py``, ``edge-model train --task detect``,
``edge-model quantize``) and cached outside the repo by the hash of the trainer, the data
maker, the settings and the versions (a cold cache trains for about a minute per detector on a
quiet machine; a warm one returns at once). :data:`TINY` is 64x48 (grid 8x6) and briefly
trained: it finds most objects but is not the measured one of docs/train.md. The firmware tests
train other sizes and class counts through the same function (tests/detector_models.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from edge.outputs import atomic_write_bytes
from tests.cache import artefact_cache

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DetectorRecipe:
    """What a test detector is trained on and how: ``make_detect_data`` arguments and
    ``edge-model train`` options (``--task detect`` is added)."""

    name: str
    images: int = 200
    seed: int = 3
    kinds: str = "disc,cross"
    size: str = "5,10"
    width: int = 160
    height: int = 120
    train: tuple[str, ...] = ("--input-size", "64x48", "--epochs", "14", "--batch-size", "16",
                              "--seed", "0", "--weights", "none")


TINY = DetectorRecipe("tiny")


@dataclass(frozen=True)
class TrainedDetector:
    data: Path  # the YOLO-layout folder it was trained on
    keras: Path
    tflite: Path


def write_detect_data(folder: Path, images: int, seed: int, kinds: str = "disc,cross",
                      size: str = "5,10", width: int = 160, height: int = 120) -> Path:
    """``tools/make_detect_data.py FOLDER --images N --seed S`` in this process."""
    spec = importlib.util.spec_from_file_location("make_detect_data",
                                                  ROOT / "tools" / "make_detect_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(folder), "--images", str(images), "--seed", str(seed),
                        "--kinds", kinds, "--size", size, "--width", str(width),
                        "--height", str(height)]) == 0
    return folder


def _key(recipe: DetectorRecipe) -> str:
    import tensorflow as tf

    digest = hashlib.sha256()
    sources = [*sorted((ROOT / "edge" / "modelbuild").glob("*.py")),
               ROOT / "edge" / "decode" / "centroids.py", ROOT / "tools" / "make_detect_data.py",
               Path(__file__)]
    for path in sources:
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(repr(recipe).encode())
    digest.update(f"{tf.__version__} {tf.keras.__version__} {sys.version_info[:2]}".encode())
    return digest.hexdigest()[:16]


def trained_detector(recipe: DetectorRecipe = TINY) -> TrainedDetector:
    """The cached detector of ``recipe``, trained (and its data written) when the cache is
    cold."""
    from edge.cli.model import main as edge_model

    cache = artefact_cache("detector") / _key(recipe)
    data, keras_file, tflite_file = cache / "data", cache / "detector.keras", \
        cache / "detector.tflite"
    if keras_file.is_file() and tflite_file.is_file() and (data / "classes.txt").is_file():
        return TrainedDetector(data, keras_file, tflite_file)
    write_detect_data(data, recipe.images, recipe.seed, recipe.kinds, recipe.size,
                      recipe.width, recipe.height)
    work = cache / "work"
    work.mkdir(parents=True, exist_ok=True)
    out = work / "detector.keras"
    assert edge_model(["-q", "train", str(data), str(out), "--task", "detect",
                       *recipe.train]) == 0
    assert edge_model(["-q", "quantize", str(out)]) == 0
    atomic_write_bytes(tflite_file, out.with_suffix(".tflite").read_bytes())
    # The record names the data folder it was trained on: the cached one, so quantize and
    # evaluate find it again.
    atomic_write_bytes(keras_file, out.read_bytes())
    return TrainedDetector(data, keras_file, tflite_file)
