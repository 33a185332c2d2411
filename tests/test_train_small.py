"""edge-model on a small data set, as people have them: 60 shapes per class (tests/shapes.py).

From the ImageNet weights inside the shared quantized MobileNetV2 (``--weights FILE.tflite``,
width 1.0 read from the file) at 96x96: a real ``edge-model train`` + ``quantize``, cached
outside the repo by the hash of the trainer, the data maker, the settings and the versions
(a cold cache trains for a few minutes; a warm one only evaluates). The int8 model must
classify a separate folder of shapes drawn with another seed at or above :data:`FLOOR`, within
2 points of the float model, and carry only classes, input size and task inside.

From scratch, a tiny run checks what the stopping rule promises on a real trainer: it does not
stop before ``--min-epochs`` and every epoch line says what it waits for.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from edge.cli.model import main as edge_model
from edge.outputs import atomic_write_bytes
from tests.cache import artefact_cache
from tests.shapes import write_shapes

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow", reason="needs TensorFlow (pip install 'edge-labels[build]')")

ROOT = Path(__file__).resolve().parents[1]
PTQ = ROOT.parent / "shared" / "data" / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
KINDS = ("circle", "square", "triangle")
PER_CLASS = 60
HELD_OUT = 40
FLOOR = 0.85  # int8 on the separate folder; measured 95 % with 150 per class (docs/train.md)
TRANSFER = ["--weights", str(PTQ), "--resolution", "96", "--epochs", "24", "--seed", "0"]


def _key() -> str:
    digest = hashlib.sha256()
    sources = [*sorted((ROOT / "edge" / "modelbuild").glob("*.py")), ROOT / "tests/shapes.py"]
    for path in sources:
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(repr((KINDS, PER_CLASS, TRANSFER[2:], PTQ.name)).encode())
    digest.update(f"{tf.__version__} {tf.keras.__version__} {sys.version_info[:2]}".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"), PER_CLASS, seed=7, kinds=KINDS)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("held-out"), HELD_OUT, seed=8, kinds=KINDS,
                        size=(0.2, 0.5))


@pytest.fixture(scope="module")
def transfer(shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model.keras, model.tflite) trained from the .tflite's weights, cached by _key()."""
    if not PTQ.is_file():
        pytest.skip(f"needs {PTQ} (the shared data)")
    cache = artefact_cache("train-small") / _key()
    keras_file, tflite_file = cache / "shapes.keras", cache / "shapes.tflite"
    if keras_file.is_file() and tflite_file.is_file():
        return keras_file, tflite_file
    out = tmp_path_factory.mktemp("transfer") / "shapes.keras"
    assert edge_model(["-q", "train", str(shapes), str(out), *TRANSFER]) == 0
    assert edge_model(["-q", "quantize", str(out)]) == 0
    atomic_write_bytes(tflite_file, out.with_suffix(".tflite").read_bytes())
    atomic_write_bytes(keras_file, out.read_bytes())
    return keras_file, tflite_file


def _evaluate(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert edge_model(["evaluate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tflite_weights_learn_a_small_data_set(
    transfer: tuple[Path, Path], shapes: Path, held_out: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.modelbuild.keras_file import read_metadata

    record = read_metadata(transfer[0])
    assert record is not None
    assert record["architecture"]["alpha"] == 1.0 and record["input_size"] == [96, 96]
    stages = [h["stage"] for h in record["training"]["history"]]
    assert stages[0] == "head" and stages[-1] == "fine-tune", stages
    report = _evaluate([str(transfer[0]), str(held_out), "--tflite", str(transfer[1]),
                        "--split", "all", "--confusion", str(tmp_path / "c.png")], capsys)
    models = report["models"]
    assert report["images"] == HELD_OUT * len(KINDS)
    assert models["int8"]["accuracy"] >= FLOOR, report
    assert abs(report["int8_drop_points"]) <= 2.0, report
    # The held-out split of the training folder too (17 images, measured 13 right: a
    # looser floor, still far above chance).
    report = _evaluate([str(transfer[0]), str(shapes), "--tflite", str(transfer[1]),
                        "--confusion", str(tmp_path / "c.png")], capsys)
    assert report["split"] == "test" and report["models"]["int8"]["accuracy"] >= 0.6, report


def test_the_tflite_carries_only_what_the_commands_need(transfer: tuple[Path, Path]) -> None:
    from edge.model import read_model
    from edge.model.labels import embedded_file

    content = transfer[1].read_bytes()
    assert read_model(transfer[1]).labels == KINDS
    record = json.loads(embedded_file(content, "edge_training.json") or b"{}")
    assert set(record) == {"classes", "input_size", "task", "data"}, record
    assert record["task"] == "classify" and record["input_size"] == [96, 96]
    assert "/" not in json.dumps(record)  # no paths


def test_evaluate_with_a_tflite_of_other_classes_is_one_line(
    transfer: tuple[Path, Path], held_out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert edge_model(["evaluate", str(transfer[0]), str(held_out), "--split", "all",
                       "--tflite", str(PTQ)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has 1001 outputs, but the classes are 3" in err[0], err


def test_from_scratch_runs_its_minimum_and_says_what_it_waits_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_shapes(tmp_path / "tiny", 8, seed=3, kinds=("circle", "cross"),
                        image_size=(48, 36))
    out = tmp_path / "tiny.keras"
    capsys.readouterr()
    assert edge_model(["train", str(data), str(out), "--weights", "none", "--resolution", "32",
                       "--epochs", "4", "--min-epochs", "3", "--patience", "1",
                       "--val", "0.3", "--test", "0.2"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if " done in " in line]
    assert "runs at least to epoch 3" in lines[0], err
    assert len(lines) >= 3, err  # never stopped before its minimum
    assert all("; run <= " in line for line in lines[1:]), lines
    from edge.modelbuild.keras_file import read_metadata

    training = (read_metadata(out) or {})["training"]
    assert training["min_epochs"] == 3 and training["patience"] == 1
    assert training["epochs_run"] >= 3
