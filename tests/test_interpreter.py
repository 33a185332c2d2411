"""The classifier on real LiteRT with the reference models, compared with bare ai-edge-litert."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import BackendError, DelegateError, InterpreterError, ModelError
from edge.model import read_model
from edge.runtime import Classification, Classifier
from edge.runtime.backends import load_backend, numpy_conflict
from edge.runtime.interpreter import one_line

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
V2_MODELS = ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"]
EXPECTED = {"parrot.jpg": (89, "macaw"), "cat.bmp": (286, "Egyptian cat"),
            "grace_hopper.bmp": (653, "military uniform")}

litert = pytest.importorskip("ai_edge_litert.interpreter",
                             reason="ai-edge-litert is not installed")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"reference data not found at {DATA} "
                                "(see ../shared/data/README.md)")


def model_path(name: str) -> Path:
    return DATA / "models" / name


def image(name: str) -> np.ndarray:
    from edge.camera.images import read_image

    return read_image(DATA / "images" / name)


@pytest.fixture(scope="module", params=V2_MODELS)
def classifier(request):
    with Classifier.open(model_path(request.param), threads=2) as opened:
        yield opened


@needs_data
@pytest.mark.parametrize("name", list(EXPECTED))
def test_mobilenet_v2_top1_with_the_models_own_labels(classifier, name):
    best = classifier.classify(image(name), color="bgr", top_k=3)
    index, label = EXPECTED[name]
    assert best[0] == Classification(index, label, best[0].score)
    assert best[0].score >= 0.5
    assert classifier.labels[index] == label and len(classifier.labels) == 1001
    assert classifier.invoke_ms > 0


@needs_data
@pytest.mark.parametrize("name", list(EXPECTED))
def test_scores_equal_a_bare_litert_run_exactly(classifier, name):
    tensor = classifier.preprocess(image(name), color="bgr")
    ours = classifier.run(tensor)
    bare = litert.Interpreter(model_path=str(DATA / "models" / Path(classifier.model.source).name),
                              num_threads=2)
    bare.allocate_tensors()
    bare.set_tensor(bare.get_input_details()[0]["index"], tensor)
    bare.invoke()
    out = bare.get_output_details()[0]
    raw = bare.get_tensor(out["index"])
    scale, zero_point = out["quantization"]
    widened = raw.reshape(-1).astype(np.int64) - zero_point
    expected = widened.astype(np.float32) * np.float32(scale)
    np.testing.assert_array_equal(ours, expected)


@needs_data
def test_built_once_buffers_reused_and_sizes_reported(classifier):
    first = classifier.preprocess(image("parrot.jpg"), color="bgr")
    assert classifier.preprocess(image("cat.bmp"), color="bgr") is first
    assert classifier.input_size == (224, 224) and classifier.input_spec.conversion == "identity"
    assert classifier.backend_name.startswith("ai-edge-litert ")
    assert classifier.delegate_name == "none" and classifier.threads == 2


@needs_data
def test_labels_file_of_1000_shifts_by_one(tmp_path):
    lines = (DATA / "labels" / "imagenet_labels.txt").read_text().splitlines()[1:]
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(lines) + "\n")
    with Classifier.open(model_path(V2_MODELS[0]), labels=path) as clf:
        assert clf.classify(image("parrot.jpg"), color="bgr", top_k=1)[0].label == "macaw"
        assert clf.labels[0] == "background"
    with Classifier.open(model_path(V2_MODELS[0]), labels=["x"] * 1001) as clf:
        assert clf.labels[89] == "x"


@needs_data
def test_opens_from_bytes_and_from_a_read_model_and_closes():
    content = model_path("mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    with Classifier.open(content) as clf:
        assert clf.input_size == (128, 128)
        tensor = clf.preprocess(image("parrot.jpg"), color="bgr").copy()
    with pytest.raises(InterpreterError, match="closed"):
        clf.run(tensor)
    with Classifier.open(read_model(content), resize="crop") as clf:
        assert clf.run(tensor).shape == (1001,)
        with pytest.raises(InterpreterError):
            clf.run(np.zeros((1, 64, 64, 3), np.uint8))


@needs_data
def test_edgetpu_model_without_a_tpu_names_the_edge_tpu():
    with pytest.raises(DelegateError, match="compiled for the Edge TPU") as info:
        Classifier.open(model_path("mobilenet_v1_0.25_128_quant_edgetpu.tflite"))
    assert "\n" not in str(info.value)
    with pytest.raises(DelegateError, match="cannot run with the delegate off"):
        Classifier.open(model_path("mobilenet_v1_0.25_128_quant_edgetpu.tflite"),
                        delegate="none")
    with pytest.raises(DelegateError, match="two Edge TPU devices"):
        Classifier.open(f"{model_path('mobilenet_v1_0.25_128_quant.tflite')}@usb:0",
                        device="pci")


@needs_data
def test_unresolved_custom_op_is_named():
    with pytest.raises(InterpreterError, match="unresolved custom op fake-op-double"):
        Classifier.open(model_path("model_invoking_error.tflite"))


@needs_data
def test_model_litert_refuses_gives_its_reason_in_one_line():
    with pytest.raises(InterpreterError) as info:
        Classifier.open(model_path("person_detect.tflite"))
    message = str(info.value)
    assert "quantized_dimension must be in range" in message and "\n" not in message
    assert message.startswith("person_detect.tflite: ai-edge-litert refused the model")


def test_malformed_models_and_arguments():
    with pytest.raises(ModelError):
        Classifier.open(b"not a model")
    with pytest.raises(BackendError, match="unknown backend 'tflite'"):
        load_backend("tflite")


def test_one_line_dedupes_and_cuts():
    text = "A failed.\nSee x. " + "Tensor 1 bad. " * 5 + "Tensor 2 bad."
    assert one_line(text) == "A failed. See x. Tensor 1 bad. (and 1 more)"
    assert len(one_line("x" * 1000)) == 240


def test_tflite_runtime_under_numpy_2_is_refused_up_front(tmp_path, monkeypatch):
    (tmp_path / "tflite_runtime").mkdir()
    (tmp_path / "tflite_runtime" / "__init__.py").write_text("raise SystemExit('imported!')\n")
    info = tmp_path / "tflite_runtime-2.14.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tflite-runtime\n"
                                   "Version: 2.14.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(np, "__version__", "2.1.0")
    with pytest.raises(BackendError) as err:
        load_backend("tflite-runtime")
    assert str(err.value) == ("tflite-runtime 2.14.0 needs numpy<2; install the `tflite-runtime` "
                              "extra in its own venv or use ai-edge-litert")
    assert "tflite_runtime" not in sys.modules
    assert numpy_conflict("tflite-runtime", "2.14.0", "1.26.4") is None


def test_auto_picks_ai_edge_litert_first():
    assert load_backend().name == "ai-edge-litert"


def test_importing_edge_runtime_imports_no_interpreter():
    # edge.model reads flatbuffers with the schema module of ai-edge-litert; no interpreter.
    code = ("import sys, edge.runtime, edge.cli.classify; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tflite_runtime', 'tensorflow') or m == 'ai_edge_litert.interpreter'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True, env={"PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"
