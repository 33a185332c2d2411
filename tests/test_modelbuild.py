"""edge-model and edge.modelbuild: argument checks, missing TensorFlow, bad inputs, paper counts.

Tests that need TensorFlow skip without it (``make test`` installs tensorflow-cpu); the others
run everywhere. Nothing here trains a model.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli.model import main
from edge.demo import model_path
from edge.demo.scene import render_sample
from edge.errors import BackendError, TrainingError
from edge.modelbuild import check_quantization, import_tensorflow, preprocess_frame
from edge.modelbuild.quantize import read_images

NEEDS_TF = "needs TensorFlow (pip install 'edge-labels[build]'; make test installs tensorflow-cpu)"


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("edge-model: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        frame, _ = render_sample(rng, (160, 120))
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


@pytest.fixture
def no_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now fails


# --- without TensorFlow -------------------------------------------------------------------------


def test_missing_tensorflow_names_the_extra(no_tensorflow: None) -> None:
    with pytest.raises(BackendError, match=r"pip install 'edge-labels\[build\]'") as info:
        import_tensorflow()
    assert isinstance(info.value.__cause__, ImportError)


def test_build_cli_without_tensorflow_says_which_extra(
    no_tensorflow: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["build", "--alpha", "0.35", "--resolution", "96", "--classes", "3",
                 str(tmp_path / "m.keras")])
    assert code == 2
    assert "pip install 'edge-labels[build]'" in _one_error_line(capsys)
    assert not (tmp_path / "m.keras").exists()


def test_quantize_cli_without_tensorflow_says_which_extra(
    no_tensorflow: None, tmp_path: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.keras"
    with zipfile.ZipFile(model, "w") as archive:
        archive.writestr("config.json", "{}")
    out = tmp_path / "m.tflite"
    assert main(["quantize", str(model), "--representative", str(images), str(out)]) == 2
    assert "pip install 'edge-labels[build]'" in _one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--alpha", "0.6", "alpha (=0.6) must be one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4"),
    ("--resolution", "16", "resolution (=16) must be >= 32"),
    ("--classes", "1", "classes (=1) must be >= 2"),
])
def test_build_rejects_out_of_range_arguments(
    flag: str, value: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"--alpha": "0.35", "--resolution": "96", "--classes": "3", flag: value}
    argv = ["build", *[x for item in args.items() for x in item], str(tmp_path / "m.keras")]
    assert main(argv) == 2
    assert expected in _one_error_line(capsys)


def test_quantize_rejects_an_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    out = tmp_path / "m.tflite"
    assert main(["quantize", "any.keras", "--representative", str(empty), str(out)]) == 2
    assert f"{empty}: no images" in _one_error_line(capsys)
    assert list(tmp_path.glob("*.tflite*")) == []


def test_quantize_rejects_a_folder_of_unreadable_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (broken / "b.jpg").write_bytes(b"")
    out = tmp_path / "m.tflite"
    assert main(["quantize", "any.keras", "--representative", str(broken), str(out)]) == 2
    assert "none of the 2 file(s) is a readable image" in _one_error_line(capsys)
    assert not out.exists()


def test_quantize_rejects_a_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    missing = tmp_path / "nowhere"
    assert main(["quantize", "m.keras", "--representative", str(missing), "o.tflite"]) == 2
    assert "no such file or folder" in _one_error_line(capsys)


@pytest.mark.parametrize("content", [b"", b"not a zip archive", None])
def test_quantize_rejects_a_model_that_is_not_keras(
    content: bytes | None, tmp_path: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.keras"
    model.write_bytes(model_path().read_bytes() if content is None else content)
    out = tmp_path / "m.tflite"
    assert main(["quantize", str(model), "--representative", str(images), str(out)]) == 2
    assert "not a Keras model" in _one_error_line(capsys)
    assert not out.exists()


def test_read_images_skips_unreadable_files_and_returns_rgb(tmp_path: Path) -> None:
    frame = np.zeros((10, 20, 3), np.uint8)
    frame[..., 0] = 200  # red in RGB
    cv2.imwrite(str(tmp_path / "red.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (tmp_path / "bad.png").write_bytes(b"junk")
    (frames,) = [read_images([tmp_path])]
    assert len(frames) == 1
    assert np.array_equal(frames[0], frame)


def test_calibration_preprocessing_is_the_runtimes(images: Path) -> None:
    from edge.model import read_model
    from edge.runtime.preprocess import Preprocessor, input_spec

    tensor = read_model(model_path()).input_tensors[0]
    runtime = Preprocessor(input_spec(tensor))
    assert tensor.quantization is not None
    scale, zero_point = tensor.quantization.scale[0], tensor.quantization.zero_point[0]
    for frame in read_images([images]):
        ours = preprocess_frame(frame, (96, 96)).astype(np.float32)
        expected = np.clip(np.round(ours / scale + zero_point), -128, 127).astype(np.int8)
        assert np.array_equal(runtime(frame)[0], expected)


def test_the_shipped_demo_model_passes_the_degeneracy_check() -> None:
    rng = np.random.default_rng(11)
    frames = [preprocess_frame(render_sample(rng)[0], (96, 96)) for _ in range(8)]
    check_quantization(model_path().read_bytes(), frames)


# --- with TensorFlow ----------------------------------------------------------------------------


def _float_tflite(model: object) -> bytes:
    tf = pytest.importorskip("tensorflow", reason=NEEDS_TF)
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


@pytest.mark.parametrize(("alpha", "params", "macs"), [
    # Paper, table 4: 3.4 M parameters and 300 M multiply-adds (measured: 3.49 M, 300.8 M).
    (1.0, (3.4e6, 3.5e6), (291e6, 309e6)),
    # Paper: 585 M multiply-adds (measured: 582.2 M). Its 6.9 M parameters are not what Keras'
    # MobileNetV2 has at 1.4 (6.16 M in Keras, 6.08 M after batch norm is folded).
    (1.4, (6.0e6, 6.2e6), (570e6, 600e6)),
])
def test_built_models_match_the_mobilenetv2_paper(
    alpha: float, params: tuple[float, float], macs: tuple[float, float]
) -> None:
    pytest.importorskip("tensorflow", reason=NEEDS_TF)
    from edge.model import read_model
    from edge.model.analysis import analyze
    from edge.modelbuild import build_mobilenetv2

    model = build_mobilenetv2(alpha, 224, 1000)
    report = analyze(read_model(_float_tflite(model)))
    assert params[0] <= report.total_params <= params[1]
    assert macs[0] <= report.total_macs <= macs[1]
    # Keras also counts batch-norm statistics, which the converter folds into the convolutions.
    assert report.total_params < model.count_params() < report.total_params * 1.02


def test_built_model_takes_raw_pixels(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow", reason=NEEDS_TF)
    out = tmp_path / "m.keras"
    assert main(["-q", "build", "--alpha", "0.35", "--resolution", "100", "--classes", "5",
                 str(out)]) == 0
    model = tf.keras.models.load_model(out, compile=False)
    assert tuple(model.inputs[0].shape) == (None, 100, 100, 3)
    assert tuple(model.outputs[0].shape) == (None, 5)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 100, 100, 3)).astype(np.float32)
    rescale = model.get_layer("to_unit_range")
    np.testing.assert_allclose(rescale(pixels), pixels / 127.5 - 1.0, atol=1e-5)
    assert model.layers[1] is rescale  # right after the input: the model takes raw pixels
    np.testing.assert_allclose(np.sum(model(pixels), axis=1), 1.0, atol=1e-5)


def test_quantize_refuses_collapsed_random_weights(
    tmp_path: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorflow", reason=NEEDS_TF)
    model = tmp_path / "random.keras"
    assert main(["-q", "build", "--alpha", "0.35", "--resolution", "96", "--classes", "11",
                 str(model)]) == 0
    out = tmp_path / "random.tflite"
    assert main(["-q", "quantize", str(model), "--representative", str(images), str(out)]) == 2
    line = _one_error_line(capsys)
    assert "degenerate quantization" in line and "softmax input" in line
    assert "edge-model train DATA MODEL.keras" in line  # what to do instead
    assert list(tmp_path.glob("*.tflite*")) == []


def test_from_scratch_residual_blocks_start_as_the_identity() -> None:
    tf = pytest.importorskip("tensorflow", reason=NEEDS_TF)
    from edge.modelbuild import build_mobilenetv2
    from edge.modelbuild.build import BACKBONE
    from edge.modelbuild.train import start_residual_blocks_as_identity

    backbone = build_mobilenetv2(0.35, 64, 2).get_layer(BACKBONE)
    assert start_residual_blocks_as_identity(backbone) == 10  # MobileNetV2's shortcut blocks
    zeroed = [layer.name for layer in backbone.layers if layer.name.endswith("_project_BN")
              and not np.any(layer.gamma.numpy())]
    assert len(zeroed) == 10 and "block_2_project_BN" in zeroed
    assert "block_1_project_BN" not in zeroed  # stride 2: no shortcut, stays as built
    # block_2 adds its (now silent) branch to its input: the sum is the input.
    probe = tf.keras.Model(backbone.inputs, [backbone.get_layer("block_1_project_BN").output,
                                             backbone.get_layer("block_2_add").output])
    pixels = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    shortcut, added = probe(pixels, training=False)
    np.testing.assert_allclose(added, shortcut, atol=1e-6)


def _small_classifier(tf: object) -> object:
    keras = tf.keras  # type: ignore[attr-defined]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", kernel_initializer=
                                 keras.initializers.RandomNormal(stddev=4.0))(x)
    return keras.Model(inputs, outputs)


def test_quantize_cli_writes_a_full_int8_model_with_pixel_input(
    tmp_path: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tf = pytest.importorskip("tensorflow", reason=NEEDS_TF)
    from ai_edge_litert.interpreter import Interpreter

    model = tmp_path / "small.keras"
    _small_classifier(tf).save(model)  # type: ignore[attr-defined]
    out = tmp_path / "small.tflite"
    files = sorted(str(p) for p in images.glob("*.png"))
    sources = [x for f in files for x in ("--representative", f)]
    assert main(["quantize", *sources, str(model), str(out)]) == 0
    assert f"{len(files)}/{len(files)} calibration images" in capsys.readouterr().err
    interpreter = Interpreter(model_content=out.read_bytes())
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert inp["dtype"] == np.int8 and outp["dtype"] == np.int8
    scale, zero_point = inp["quantization"]
    assert abs(scale - 1.0) < 0.02 and zero_point == -128
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "QUANTIZE" not in ops and "DEQUANTIZE" not in ops
    assert list(tmp_path.glob(".small.tflite*")) == []


def test_check_quantization_refuses_a_model_blind_to_its_input() -> None:
    pytest.importorskip("tensorflow", reason=NEEDS_TF)
    from edge.modelbuild import quantize_keras

    keras = import_tensorflow().keras
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(0.0)(inputs)  # every image looks the same
    x = keras.layers.Flatten()(x)
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.zeros((32 * 32 * 3, 3)), np.array([5.0, -5.0, 0.0])])  # sane scales
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    flatbuffer = quantize_keras(model, frames)
    with pytest.raises(TrainingError, match="all 4 calibration images give the same output"):
        check_quantization(flatbuffer, frames)
