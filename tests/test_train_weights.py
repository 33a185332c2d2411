"""``--weights MODEL.tflite``: ImageNet weights out of a quantized MobileNetV2 .tflite.

The mapping is checked the hard way: the Keras MobileNetV2 1.0/224 seeded from each shared
.tflite (per-channel int8 and per-tensor uint8), with the file's own 1x1 classifier as a dense
head, must give the .tflite's own top-1 class on the shared images, and its probabilities must
stay close to the int8 model's. A wrong transpose, a missed zero point or a batch norm left
unfolded would give another class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.errors import TrainingError
from edge.modelbuild.weights import (
    dequantize,
    folded_convs,
    make_divisible,
    mobilenetv2_convs,
    tflite_alpha,
)

MODELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "models"
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
PTQ = MODELS / "tf2_mobilenet_v2_1.0_224_ptq.tflite"  # per-channel int8 (uint8 in/out)
QUANT = MODELS / "mobilenet_v2_1.0_224_quant.tflite"  # per-tensor uint8, asymmetric
needs_shared = pytest.mark.skipif(not PTQ.is_file() or not QUANT.is_file(),
                                  reason="needs ../shared/data/models (the shared data)")


def test_keras_channel_rounding() -> None:
    assert [make_divisible(32 * a) for a in (0.35, 0.5, 0.75, 1.0, 1.4)] == [16, 16, 24, 32, 48]
    convs = mobilenetv2_convs(0.35)
    assert len(convs) == 52 and convs[0].kernel == (3, 3, 3, 16)
    assert convs[-1].layer == "Conv_1" and convs[-1].kernel == (1, 1, 112, 1280)
    assert mobilenetv2_convs(1.4)[-1].kernel == (1, 1, 448, 1792)
    assert [c.layer for c in convs[:4]] == ["Conv1", "expanded_conv_depthwise",
                                            "expanded_conv_project", "block_1_expand"]


@needs_shared
def test_dequantize_per_channel_and_per_tensor() -> None:
    from edge.model.reader import read_model

    for path, per_channel in ((PTQ, True), (QUANT, False)):
        graph = read_model(path).main
        conv = next(op for op in graph.operators if op.opcode == "CONV_2D")
        weight = graph.tensors[conv.inputs[1]]
        q = weight.quantization
        assert q is not None and q.per_channel == per_channel
        real = dequantize(weight)
        channel = 5
        zero = q.zero_point[channel if per_channel else 0]
        scale = q.scale[channel if per_channel else 0]
        expected = (weight.array()[channel].astype(np.float32) - zero) * scale
        np.testing.assert_allclose(real[channel], expected, rtol=1e-6)
        assert len(folded_convs(read_model(path))) == 53  # 52 of the backbone + classifier


@needs_shared
def test_width_is_read_from_the_file_and_others_are_refused() -> None:
    assert tflite_alpha(PTQ) == 1.0 and tflite_alpha(QUANT) == 1.0
    for other in ("mobilenet_v1_0.25_128_quant.tflite", "person_detect.tflite",
                  "yolov8n_full_integer_quant.tflite"):
        with pytest.raises(TrainingError, match="not a quantized MobileNetV2 classifier"):
            tflite_alpha(MODELS / other)


def _imagenet_from_tflite(path: Path) -> object:
    """Keras MobileNetV2 1.0/224 seeded from ``path`` plus the file's own classifier."""
    tf = pytest.importorskip("tensorflow")
    from edge.modelbuild.build import build_mobilenetv2
    from edge.modelbuild.weights import classifier_head

    model = build_mobilenetv2(1.0, 224, 1001, weights=str(path), dropout=0.0)
    kernel, bias = classifier_head(path, 1.0)
    model.get_layer("predictions").set_weights([kernel, bias])
    assert isinstance(model, tf.keras.Model)
    return model


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("path", [PTQ, QUANT], ids=["int8-per-channel", "uint8-per-tensor"])
def test_keras_from_tflite_weights_agrees_with_the_tflite(path: Path) -> None:
    from edge.camera.images import read_image
    from edge.modelbuild.train import predict
    from edge.runtime import Classifier

    model = _imagenet_from_tflite(path)
    pictures = sorted(p for p in IMAGES.iterdir() if p.suffix in (".bmp", ".jpg"))
    assert len(pictures) >= 4
    with Classifier.open(str(path), threads=2) as clf:
        for picture in pictures:
            frame = read_image(picture)
            tensor = clf.preprocess(frame).copy()
            raw = np.asarray(clf.run(tensor), np.float32).reshape(-1)
            pixels = tensor.reshape(1, 224, 224, 3)
            if pixels.dtype == np.int8:
                pixels = pixels.astype(np.int16) + 128
            keras = predict(model, pixels.astype(np.uint8)).reshape(-1)
            assert int(np.argmax(keras)) == int(np.argmax(raw)), picture.name
            # The int8 model's probability of its class, quantized to 1/256, and the float
            # model's: close, not equal (int8 rounding through 53 layers).
            top = int(np.argmax(raw))
            assert abs(float(keras[top]) - float(raw[top])) < 0.15, (picture.name, keras[top],
                                                                     raw[top])


@needs_shared
def test_cli_refuses_other_architectures_and_widths_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli.model import main as edge_model
    from tests.shapes import write_shapes

    data = write_shapes(tmp_path / "shapes", 6, image_size=(48, 36))
    for argv, expected in (
        (["--weights", str(MODELS / "person_detect.tflite")], "match no MobileNetV2 width"),
        (["--weights", str(PTQ), "--alpha", "0.35"],
         "not Keras' Conv1 (3, 3, 3, 16), stride 2; its width is 1, pass --alpha 1"),
    ):
        out = tmp_path / "m.keras"
        assert edge_model(["train", str(data), str(out), "--resolution", "96", "--epochs", "1",
                           *argv]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(err) == 1 and expected in err[0], err
        assert not out.exists()


def test_weights_auto_offline_warns_once_and_trains_from_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse
    import logging

    from edge.cli import model_commands

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # nothing cached
    monkeypatch.setattr("edge.modelbuild.build.imagenet_reachable", lambda timeout=3.0: False)
    args = argparse.Namespace(weights="auto")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("edge-model").addHandler(handler)
    try:
        assert model_commands._resolve_weights(args, 0.35, 96, 40) is None
        assert model_commands._resolve_weights(args, 0.35, 96, 5000) is None
    finally:
        logging.getLogger("edge-model").removeHandler(handler)
    assert len(records) == 1, records  # only for the small data set
    message = records[0].getMessage()
    assert "from scratch on 40 training images per class" in message
    from edge.modelbuild.train import SCRATCH_IMAGES_PER_CLASS

    assert f"from scratch wants about {SCRATCH_IMAGES_PER_CLASS} per class" in message
    assert "--weights mobilenet_v2_1.0_224_quant.tflite" in message
    # Cached: ImageNet without asking the network.
    from edge.modelbuild.build import imagenet_file

    cached = imagenet_file(0.35, 96)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    assert model_commands._resolve_weights(args, 0.35, 96, 40) == "imagenet"


def test_cached_imagenet_file_is_checksummed(tmp_path: Path) -> None:
    from edge.modelbuild.build import check_imagenet_file

    weights = tmp_path / "w_no_top.h5"
    weights.write_bytes(b"downloaded")
    check_imagenet_file(weights)  # first use records the SHA-256
    check_imagenet_file(weights)
    weights.write_bytes(b"truncat")
    with pytest.raises(TrainingError, match="changed since they were downloaded"):
        check_imagenet_file(weights)


def test_a_keras_file_given_where_a_tflite_belongs_says_run_quantize(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import zipfile

    from edge.cli.classify import main as edge_classify
    from firmware_export.cli.export import main as edge_export

    model = tmp_path / "model.keras"
    with zipfile.ZipFile(model, "w") as archive:  # what Keras writes: a zip archive
        archive.writestr("config.json", "{}")
    image = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    for run in (lambda: edge_classify(["--model", str(model), str(image)]),
                lambda: edge_export([str(model), "--board", "nano33ble", "--out",
                                     str(tmp_path / "fw")])):
        capsys.readouterr()
        assert run() == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"run `edge-model quantize {model}`" in err[0], err


@needs_shared
def test_listen_reads_the_labels_embedded_in_a_model(tmp_path: Path) -> None:
    from edge.cli.listen import _read_labels
    from edge.model.labels import with_embedded_files

    model = tmp_path / "m.tflite"
    model.write_bytes(with_embedded_files(PTQ.read_bytes(), ["empty", "full"]))
    assert _read_labels(model) == ("empty", "full")
    with pytest.raises(Exception, match="has no embedded labels"):
        _read_labels(MODELS / "person_detect.tflite")


@pytest.mark.parametrize("weights", ["none", "mobilenet_v2_1.0_224_quant.tflite"])
def test_a_training_near_chance_says_so_and_what_to_do(weights: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import logging

    from edge.cli import model_commands
    from edge.modelbuild.train import SCRATCH_IMAGES_PER_CLASS, TrainResult

    def result(best: float) -> TrainResult:
        metadata = {"classes": ["circle", "square", "triangle"],
                    "architecture": {"weights": weights}}
        return TrainResult(None, (), 40, best, False, True, (), metadata)

    args = argparse.Namespace(quiet=False, output=tmp_path / "m.keras")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("edge-model").addHandler(handler)
    try:
        model_commands._report_training(args, result(0.9))
        assert records == []
        model_commands._report_training(args, result(0.455))
    finally:
        logging.getLogger("edge-model").removeHandler(handler)
    assert len(records) == 1, records
    message = records[0].getMessage()
    assert "best val accuracy 45.5% is nearer chance (33.3% for 3 classes)" in message
    assert str(tmp_path / "m.keras") in message
    if weights == "none":
        assert "--weights mobilenet_v2_1.0_224_quant.tflite" in message
        assert f"about {SCRATCH_IMAGES_PER_CLASS} images per class" in message
    else:
        assert "each class folder holds what its name says" in message
    assert "next: edge-model quantize" in capsys.readouterr().err
