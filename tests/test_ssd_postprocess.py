"""SSDs with TFLite_Detection_PostProcess (built here as TF's Object Detection API exports them,
tests/ssd_models.py), their outputs in four different orders: edge finds each output's role in
the graph and its detections equal LiteRT's own kernel's, read by the signature's names."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import classify
from edge.model import read_model
from edge.runtime import Classifier
from edge.runtime.kinds import model_kind
from edge.runtime.postprocess import DecodeOptions
from tests.ssd_models import SIZE, VARIANTS, ssd_models

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is needed")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tf = pytest.importorskip("tensorflow", reason="tensorflow (the build extra) makes the "
                             "test models: pip install -e '.[build]'")
    folder = tmp_path_factory.mktemp("ssd")
    paths = {}
    for name, content in ssd_models(tf).items():
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(content)
    return paths


def picture(width: int, height: int, seed: int) -> np.ndarray:
    """A BGR picture made here: noise with a few filled shapes."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for _ in range(4):
        x, y = int(rng.integers(0, width - 10)), int(rng.integers(0, height - 10))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.rectangle(image, (x, y), (x + width // 4, y + height // 4), colour, -1)
    return image


def kernel_detections(path: Path, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
    """LiteRT's own kernel on the documented float input ((pixels - 127.5) / 127.5, squashed
    bilinearly, as TF's Object Detection API does), its outputs read by the signature's names,
    not by position."""
    rgb = cv2.resize(image_bgr, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
    tensor = ((rgb.astype(np.float32) - 127.5) / 127.5)[None]
    interpreter = litert.Interpreter(model_path=str(path), num_threads=1)
    out = interpreter.get_signature_runner()(x=tensor)
    roles = {}
    for key, value in out.items():
        role = next(r for r in ("boxes", "classes", "scores") if r in key) \
            if not key.endswith(("count", "detections")) else "count"
        roles[role] = value
    return roles


@pytest.mark.parametrize("name", list(VARIANTS))
def test_roles_come_from_the_graph_whatever_the_output_order(models, name):
    model = read_model(models[name])
    kind = model_kind(model)
    assert (kind.kind, kind.layout) == ("detect", "ssd_postprocess")
    interpreter = litert.Interpreter(model_path=str(models[name]))
    interpreter.allocate_tensors()
    after = {d["index"]: tuple(d["shape"]) for d in interpreter.get_output_details()}
    assert [after[i] for i in kind.outputs] == [(1, 6, 4), (1, 6), (1, 6), (1,)]
    assert list(kind.outputs) != list(model.main.outputs)  # each lists them in another order


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize(("width", "height", "seed"), [(100, 60, 1), (37, 90, 2), (32, 32, 3)])
def test_detections_equal_litert_kernel(models, name, width, height, seed):
    image = picture(width, height, seed)
    labels = ["cat", "dog", "fox"]
    # One thread on both sides: XNNPACK's two-thread convolution rounds differently, and the
    # regular NMS then breaks a near tie (0.983207 vs 0.983206) the other way.
    with Classifier.open(models[name], labels=labels, threads=1) as clf:
        result = clf.label(image, color="bgr", options=DecodeOptions(threshold=0.0))
    reference = kernel_detections(models[name], image)
    count = int(reference["count"][0])
    assert len(result.detections) == count
    order = np.argsort(-reference["scores"][0][:count], kind="stable")
    for detection, i in zip(result.detections, order, strict=True):
        ymin, xmin, ymax, xmax = reference["boxes"][0][i]
        expected = [min(max(v, 0.0), lim) for v, lim in
                    ((xmin * width, width), (ymin * height, height), (xmax * width, width),
                     (ymax * height, height))]
        assert detection.box == pytest.approx(expected, abs=1e-3)
        assert detection.score == pytest.approx(float(reference["scores"][0][i]))
        assert detection.label == labels[int(reference["classes"][0][i])]


def test_edge_classify_json_with_a_background_label_and_a_class_filter(models, tmp_path, capsys):
    image = tmp_path / "shapes.png"
    cv2.imwrite(str(image), picture(120, 80, 5))
    labels = tmp_path / "labels.txt"
    labels.write_text("background\ncat\ndog\nfox\n")
    path = models["count-first"]
    assert classify.main(["--model", str(path), str(image), "--labels", str(labels),
                          "--threshold", "0.1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "detect" and doc["layout"] == "ssd_postprocess"
    found = doc["images"][0]["detections"]
    assert found and {d["label"] for d in found} <= {"cat", "dog", "fox"}
    assert all(d["label"] == ["cat", "dog", "fox"][d["index"]] for d in found)
    assert all(0 <= d["box"][0] <= d["box"][2] <= 120 and 0 <= d["box"][1] <= d["box"][3] <= 80
               for d in found)
    keep = found[0]["label"]
    assert classify.main(["--model", str(path), str(image), "--labels", str(labels),
                          "--threshold", "0.1", "--json", "--classes", keep]) == 0
    only = json.loads(capsys.readouterr().out)["images"][0]["detections"]
    assert only == [d for d in found if d["label"] == keep]
