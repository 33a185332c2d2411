"""Model kinds checked at open, on tiny real models made by the real TFLite converter.

A single-output classifier runs, and so does a detector (a real TFLite_Detection_PostProcess
op, which LiteRT implements); a two-output model, an embedding, a feature map and a single
sigmoid score are refused by edge-classify and edge-run with one line naming the outputs and
--kind. A uint8 input without quantization runs with --mean/--std and is otherwise refused naming
the file and the flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import classify, run
from edge.model import read_model
from edge.runtime import Classifier
from edge.runtime.kinds import model_kind
from tests.kind_models import SIZE, kind_models

pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tf = pytest.importorskip("tensorflow", reason="tensorflow (the build extra) makes the "
                             "test models: pip install -e '.[build]'")
    folder = tmp_path_factory.mktemp("kinds")
    paths = {}
    for kind, content in kind_models(tf).items():
        paths[kind] = folder / f"{kind}.tflite"
        paths[kind].write_bytes(content)
    return paths


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "noise.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 256, (SIZE * 4, SIZE * 4, 3), dtype=np.uint8))
    return path


@pytest.mark.parametrize(("kind", "found"), [
    ("classifier", "classify"), ("two-output", "multi-output"), ("embedding", "embedding"),
    ("dense", "dense"), ("single-score", "single-score"), ("detection", "detect"),
    ("uint8-raw", "classify"),
])
def test_each_kind_is_recognised(models: dict[str, Path], kind: str, found: str) -> None:
    result = model_kind(read_model(models[kind]))
    assert result.kind == found
    assert result.classes == (3 if found == "classify" else 0)


def test_the_detector_is_real_and_litert_runs_it(models: dict[str, Path]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    model = read_model(models["detection"])
    assert model.custom_ops == ["TFLite_Detection_PostProcess"]
    interpreter = Interpreter(model_content=model.content)
    interpreter.allocate_tensors()
    interpreter.invoke()  # LiteRT has the kernel: the old "no kernel for it" was false
    assert len(interpreter.get_output_details()) == 4


@pytest.mark.parametrize(("kind", "needles"), [
    ("two-output", ["two-output.tflite is a multi-output model (2 outputs:", "--kind",
                    "re-export the model with only its class-scores output"]),
    ("embedding", ["is an embedding model (output", "from MEAN", "add a classification layer"]),
    ("dense", ["is a dense model (output", "[1, 3, 3, 4]",
               "--kind classify|detect|segment|pose"]),
    ("single-score", ["is a single-score model", "one score per class"]),
])
def test_other_kinds_are_refused_with_one_line(models: dict[str, Path], image: Path,
                                               capsys: pytest.CaptureFixture[str], kind: str,
                                               needles: list[str]) -> None:
    assert classify.main(["--model", str(models[kind]), str(image)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-classify: error: ")
    assert all(needle in lines[0] for needle in needles), lines[0]


def test_edge_run_refuses_a_two_output_model(models: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = run.main(["--camera", "demo", "--model", str(models["two-output"]),
                     "--max-frames", "1"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.splitlines() == [err.splitlines()[0]] and "multi-output model" in err


def test_a_classifier_runs(models: dict[str, Path], image: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert classify.main(["--model", str(models["classifier"]), str(image), "--json",
                          "--top-k", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    results = doc["images"][0]["results"]
    assert [r["index"] for r in results] != [] and len(results) == 3
    assert sum(r["score"] for r in results) == pytest.approx(1.0, abs=1e-5)  # the softmax


def test_uint8_input_without_quantization_needs_mean_and_std(
        models: dict[str, Path], image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = models["uint8-raw"]
    assert classify.main(["--model", str(path), str(image)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edge-classify: error: {path.name}: input ")
    assert "uint8 without quantization parameters" in err and "--mean 0 --std 1" in err

    assert classify.main(["--model", str(path), str(image), "--mean", "0", "--std", "1",
                          "--json", "--top-k", "3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["input"]["conversion"] == "identity"
    scores = {r["index"]: r["score"] for r in doc["images"][0]["results"]}
    # The reference: the model itself on the raw resized pixels.
    from ai_edge_litert.interpreter import Interpreter

    pixels = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
    pixels = cv2.resize(pixels, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    interpreter = Interpreter(model_content=path.read_bytes())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], pixels[None])
    interpreter.invoke()
    expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    assert scores == {i: pytest.approx(float(s), abs=1e-6) for i, s in enumerate(expected)}


def test_the_classifier_api_refuses_before_building_an_interpreter(
        models: dict[str, Path]) -> None:
    from edge.errors import ModelError

    with pytest.raises(ModelError, match="multi-output"):
        Classifier.open(models["two-output"].read_bytes())
