"""Edge-TPU-compiled detectors take the same path as CPU ones: the delegate runs the compiled
graph, the post-processing stays LiteRT's (SSD) or ours (YOLO), and classification's actionable
errors hold. No Edge TPU exists here: the compiled models are made by tests/edgetpu_models.py and
a stand-in delegate and interpreter run their CPU twins (the tensors are the same)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import cv2
import pytest

from edge.errors import DelegateError, InterpreterError
from edge.model import read_model
from edge.runtime import Classifier
from edge.runtime import delegate as edgetpu
from edge.runtime import interpreter as runtime
from edge.runtime.backends import Backend, load_backend
from edge.runtime.kinds import model_kind
from tests.edgetpu_models import EDGETPU_OP, as_compiled
from tests.ssd_models import ssd_models

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
YOLO = DATA / "models" / "yolov8n_full_integer_quant.tflite"
COCO = DATA / "labels" / "coco80_labels.txt"
GRACE = DATA / "images" / "grace_hopper.bmp"
litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is needed")
pytestmark = pytest.mark.skipif(not YOLO.is_file(), reason=f"the shared models are not in {DATA}")
TPU = object()  # the stand-in delegate


@pytest.fixture(scope="module")
def twins() -> dict[str, tuple[bytes, bytes]]:
    """``name -> (compiled, CPU twin)``."""
    tf = pytest.importorskip("tensorflow", reason="tensorflow (the build extra) makes the SSD")
    ssd = ssd_models(tf)["count-first"]
    yolo = YOLO.read_bytes()
    return {"ssd": (as_compiled(ssd, "TFLite_Detection_PostProcess"), ssd),
            "yolo": (as_compiled(yolo), yolo)}


def stand_in_tpu(monkeypatch: pytest.MonkeyPatch, twin: bytes, asked: list[Any]) -> None:
    """LiteRT as the backend, with a delegate loader and an interpreter standing in for the
    Edge TPU: it accepts only the compiled model with the delegate, and runs the twin."""
    real = load_backend("ai-edge-litert")

    def load_delegate(library: str, options: dict[str, str] | None = None) -> object:
        asked.append((library, dict(options or {})))
        return TPU

    def interpreter(model_content: bytes, num_threads: int = 1,
                    experimental_delegates: list[Any] | None = None) -> Any:
        assert experimental_delegates == [TPU] and EDGETPU_OP.encode() in model_content
        return real.interpreter_class(model_content=twin, num_threads=num_threads)

    backend = Backend(real.name, real.version, interpreter, load_delegate)
    monkeypatch.setattr(runtime, "load_backend", lambda name=None: backend)
    monkeypatch.setattr(edgetpu, "load_edgetpu_delegate", functools.partial(
        edgetpu.load_edgetpu_delegate, open_library=lambda name: None))


@pytest.mark.parametrize(("name", "layout"), [("ssd", "ssd_postprocess"), ("yolo", "yolo")])
def test_compiled_detectors_are_recognised(twins, name, layout):
    model = read_model(twins[name][0])
    assert model.edgetpu_compiled
    assert (model_kind(model).kind, model_kind(model).layout) == ("detect", layout)


@pytest.mark.parametrize("name", ["ssd", "yolo"])
def test_without_a_tpu_the_errors_are_classifications(twins, name, monkeypatch):
    compiled = twins[name][0]
    with pytest.raises(DelegateError) as info:
        Classifier.open(compiled, labels=COCO)
    assert "compiled for the Edge TPU" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DelegateError, match="cannot run with the delegate off"):
        Classifier.open(compiled, delegate="none")
    with pytest.raises(InterpreterError, match="unresolved custom op edgetpu-custom-op: tflm"):
        Classifier.open(compiled, backend="tflm")
    # a TPU that does not answer: the delegate's bare failure becomes one actionable line
    monkeypatch.setattr(edgetpu, "load_edgetpu_delegate", functools.partial(
        edgetpu.load_edgetpu_delegate, open_library=lambda lib: None))
    real = load_backend("ai-edge-litert")

    def no_device(library: str, options: dict[str, str] | None = None) -> object:
        raise ValueError(f"Failed to load delegate from {library}\n")

    monkeypatch.setattr(runtime, "load_backend", lambda name=None: Backend(
        real.name, real.version, real.interpreter_class, no_device))
    with pytest.raises(DelegateError, match="no Edge TPU was found at device 'usb:1'"):
        Classifier.open(compiled, device="usb:1")


def test_compiled_ssd_runs_through_the_delegate_with_litert_postprocessing(twins, monkeypatch):
    compiled, twin = twins["ssd"]
    image = cv2.imread(str(GRACE))
    with Classifier.open(twin, labels=["a", "b", "c"], threads=1) as cpu:
        expected = cpu.label(image, color="bgr").detections
    asked: list[Any] = []
    stand_in_tpu(monkeypatch, twin, asked)
    with Classifier.open(compiled, labels=["a", "b", "c"], device="usb:0", threads=1) as tpu:
        assert tpu.delegate_name == "edgetpu" and tpu.kind.layout == "ssd_postprocess"
        assert tpu.label(image, color="bgr").detections == expected
    assert asked == [("libedgetpu.so.1", {"device": "usb:0"})]
    assert expected  # the comparison is not of two empty lists


def test_compiled_yolo_runs_through_the_delegate_with_our_decoding(twins, monkeypatch):
    compiled, twin = twins["yolo"]
    image = cv2.imread(str(GRACE))
    stand_in_tpu(monkeypatch, twin, [])
    with Classifier.open(compiled, labels=COCO) as tpu:  # the delegate chosen by the model
        assert tpu.delegate_name == "edgetpu" and tpu.resize == "letterbox"
        found = tpu.label(image, color="bgr").detections
    assert [d.label for d in found] == ["person", "tie"]
