"""From scratch, a small data set must at least be learnable: the trained model, in inference
mode (moving batch-norm statistics, the model's own preprocessing), fits its training images.

This is the property whose loss makes training "learn nothing" for a reason other than too
little data: batch-norm moving statistics that never settle (Keras' momentum 0.999 over a few
hundred steps), preprocessing that differs between training and inference, a learning rate
that never lets the loss leave ln(classes). It does not claim that 3 x 150 shapes generalise
from scratch: they do not yet (docs/train.md, "Why from scratch stays at chance here").

The run (a real ``train_model`` without augmentation, 2 x 40 shapes at 64x64) is cached outside
the repo by the hash of the trainer, the data maker, the settings and the versions, so a warm
cache only reads two numbers; a cold one trains for one to three minutes on a busy machine.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from edge.outputs import atomic_write_bytes
from tests.cache import artefact_cache
from tests.shapes import write_shapes

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow", reason="needs TensorFlow (pip install 'edge-labels[build]')")

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("circle", "triangle")
PER_CLASS = 40
SIZE = (0.3, 0.6)
RESOLUTION = 64
EPOCHS = 40
FLOOR = 0.9  # training accuracy in inference mode; chance is 0.5


def _key() -> str:
    digest = hashlib.sha256()
    sources = [*sorted((ROOT / "edge" / "modelbuild").glob("*.py")), ROOT / "tests/shapes.py",
               Path(__file__)]
    for path in sources:
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(repr((KINDS, PER_CLASS, SIZE, RESOLUTION, EPOCHS)).encode())
    digest.update(f"{tf.__version__} {tf.keras.__version__} {sys.version_info[:2]}".encode())
    return digest.hexdigest()[:16]


def _train(data: Path) -> dict[str, float]:
    from edge.modelbuild.augment import Augmentation
    from edge.modelbuild.dataset import load_images, scan_folder
    from edge.modelbuild.train import TrainSettings, measure, train_model

    settings = TrainSettings(alpha=0.35, resolution=RESOLUTION, epochs=EPOCHS, batch_size=16,
                             seed=0, weights=None, augmentation=Augmentation.none(),
                             min_epochs=EPOCHS)
    folder = scan_folder(data, settings.fractions)
    result = train_model(folder, settings)
    size = (RESOLUTION, RESOLUTION)
    train = load_images(folder.split("train"), size)
    loss, accuracy = measure(result.model, train)
    first = result.history[0]
    return {"train_accuracy": accuracy, "train_loss": loss, "images": len(train.labels),
            "epochs": len(result.history), "first_loss": first.loss}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    cache = artefact_cache("train-scratch") / f"{_key()}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    data = write_shapes(tmp_path_factory.mktemp("shapes"), PER_CLASS, seed=11, kinds=KINDS,
                        size=SIZE)
    numbers = _train(data)
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(cache, json.dumps(numbers).encode())
    return numbers


def test_from_scratch_fits_its_training_images_in_inference_mode(
    fitted: dict[str, float]
) -> None:
    assert fitted["epochs"] == EPOCHS, fitted  # the minimum was honoured
    assert fitted["train_accuracy"] >= FLOOR, fitted
    assert fitted["train_loss"] < fitted["first_loss"], fitted
