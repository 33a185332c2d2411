"""Full-integer int8 post-training quantization, and a check that refuses collapsed results.

Calibration images are preprocessed exactly as the runtime preprocesses camera frames: the whole
RGB frame is squash-resized to the model input with ``cv2.INTER_AREA`` (no crop) and fed as raw
pixel values 0..255; the model itself rescales them (see :func:`build_mobilenetv2`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.boards import DEFAULT_MAX_IMAGE_PIXELS
from edge.camera.images import read_rgb
from edge.errors import ImageError, TrainingError
from edge.model.labels import with_embedded_files
from edge.modelbuild.build import import_tensorflow
from edge.modelbuild.dataset import IMAGE_SUFFIXES, SplitFractions, hash_fraction, scan_folder
from edge.modelbuild.keras_file import (
    METADATA_MEMBER,
    check_output,
    load_keras_model,
    model_input_size,
    read_metadata,
)
from edge.nativelog import filtered_native_stderr
from edge.outputs import atomic_write_bytes
from edge.runtime.preprocess import fit_frame

log = logging.getLogger(__name__)

# TFLM's int8 softmax needs input_scale * 2**26 > 1; far above that, a logit span of less than
# ~0.25 (scale * 255) means every class gets about the same probability: the model collapsed.
MIN_SOFTMAX_INPUT_SCALE = 1e-3
MAX_SOFTMAX_INPUT_SCALE = 1e3
SOFTMAX_OUTPUT_SCALE = 1.0 / 256.0
SOFTMAX_OUTPUT_ZERO_POINT = -128
CALIBRATION_IMAGES = 300

Progress = Callable[[int, int], None]


def preprocess_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Squash-resize an RGB uint8 frame to ``size`` = (width, height), as the runtime does."""
    return fit_frame(frame, size)


def _expand_sources(sources: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            found = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise TrainingError(f"{source}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif source.is_file():
            files.append(source)
        else:
            raise TrainingError(f"{source}: no such file or folder of representative images")
    return files


def read_images(sources: Sequence[Path], max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
                ) -> list[np.ndarray]:
    """Read calibration images as RGB uint8 frames, at their own size.

    Args:
        sources: image files and/or folders of images.
        max_pixels: an image whose header claims more pixels is skipped, never decoded.

    Raises:
        TrainingError: a source does not exist, a folder holds no images, or nothing is
            readable. Unreadable files among readable ones are skipped with a warning.
    """
    files = _expand_sources(sources)
    frames = []
    for path in files:
        try:
            frames.append(read_rgb(path, max_pixels=max_pixels))
        except ImageError as e:
            log.warning("%s; skipped", e)
    if not frames:
        names = ", ".join(str(s) for s in sources)
        raise TrainingError(f"{names}: none of the {len(files)} file(s) is a readable image")
    return frames


def load_representative(sources: Sequence[Path], size: tuple[int, int]) -> list[np.ndarray]:
    """Read calibration images and preprocess them like camera frames to ``size`` (w, h)."""
    return [preprocess_frame(frame, size) for frame in read_images(sources)]


def quantize_keras(
    model: Any, frames: Sequence[np.ndarray], progress: Progress | None = None
) -> bytes:
    """Convert a Keras model to a full-integer int8 ``.tflite`` (int8 input and output).

    Args:
        model: a ``keras.Model`` taking raw RGB pixels 0..255.
        frames: preprocessed calibration frames, RGB uint8 at the model's input size.
        progress: called as ``progress(done, total)`` while calibration images are consumed.

    Returns:
        The flatbuffer. Call :func:`check_quantization` on it before shipping it.

    Raises:
        TrainingError: no calibration frames, or the converter failed.
    """
    if not frames:
        raise TrainingError("quantization needs at least one calibration image")
    tf = import_tensorflow()

    def representative() -> Iterator[list[np.ndarray]]:
        for done, frame in enumerate(frames, start=1):
            yield [frame[None].astype(np.float32)]
            if progress is not None:
                progress(done, len(frames))

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    chatter = io.StringIO()  # Keras' export prints the traced signature on stdout
    try:
        with contextlib.redirect_stdout(chatter), filtered_native_stderr():
            flatbuffer = bytes(converter.convert())
        log.debug("converter output: %s", chatter.getvalue())
        return flatbuffer
    except Exception as e:  # the converter raises ConverterError, ValueError, RuntimeError
        raise TrainingError(f"int8 conversion failed: {e}") from e


def _scale(details: dict[str, Any]) -> float:
    scales = details["quantization_parameters"]["scales"]
    return float(scales[0]) if len(scales) else float(details["quantization"][0])


def _softmax_inputs(interpreter: Any) -> list[dict[str, Any]]:
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return [tensors[op["inputs"][0]] for op in interpreter._get_ops_details()
            if op["op_name"] == "SOFTMAX"]


def check_quantization(model: bytes, frames: Iterable[np.ndarray], max_frames: int = 32) -> None:
    """Refuse an int8 model whose quantization collapsed.

    Checks that input and output are int8 with sane scales, that every softmax input scale lies
    in [MIN_SOFTMAX_INPUT_SCALE, MAX_SOFTMAX_INPUT_SCALE] (TFLite Micro's softmax breaks or
    returns a uniform distribution otherwise), and that the model does not give the same output
    for every calibration frame.

    Raises:
        TrainingError: with the reason, for a degenerate model.
    """
    from ai_edge_litert.interpreter import Interpreter

    with filtered_native_stderr():  # the XNNPACK "INFO: Created ... delegate" line
        interpreter = Interpreter(model_content=model)
        interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    for role, details in (("input", inp), ("output", out)):
        scale = _scale(details)
        if details["dtype"] != np.int8:
            raise TrainingError(f"{role} tensor is {details['dtype']}, not int8")
        if not math.isfinite(scale) or scale <= 0:
            raise TrainingError(f"degenerate quantization: {role} scale is {scale}")
    for tensor in _softmax_inputs(interpreter):
        scale = _scale(tensor)
        if not MIN_SOFTMAX_INPUT_SCALE <= scale <= MAX_SOFTMAX_INPUT_SCALE:
            raise TrainingError(
                f"degenerate quantization: softmax input '{tensor['name']}' has scale {scale:.3g} "
                f"(allowed {MIN_SOFTMAX_INPUT_SCALE:g}..{MAX_SOFTMAX_INPUT_SCALE:g}): "
                "its activations collapsed, as with untrained weights; train the model with "
                "`edge-model train DATA MODEL.keras` (or for more epochs), then quantize that"
            )
    _check_outputs_vary(interpreter, inp, out, frames, max_frames)


def _check_outputs_vary(
    interpreter: Any, inp: dict[str, Any], out: dict[str, Any],
    frames: Iterable[np.ndarray], max_frames: int,
) -> None:
    scale, zero_point = _scale(inp), int(inp["quantization"][1])
    outputs = []
    for frame in frames:
        q = np.clip(np.round(frame.astype(np.float32) / scale + zero_point), -128, 127)
        interpreter.set_tensor(inp["index"], q.astype(np.int8)[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]).copy())
        if len(outputs) >= max_frames:
            break
    if len(outputs) >= 2 and all(np.array_equal(outputs[0], o) for o in outputs[1:]):
        raise TrainingError(
            f"degenerate quantization: all {len(outputs)} calibration images give the same "
            "output; the activations collapsed, as with untrained weights; train the model "
            "with `edge-model train DATA MODEL.keras`, and calibrate with varied images"
        )


@dataclass(frozen=True)
class QuantizeResult:
    """What ``edge-model quantize`` wrote."""

    output: Path
    size: int
    labels: tuple[str, ...]
    calibration: str  # where the calibration images came from
    calibration_images: int


def training_split_images(model_file: Path, record: dict[str, Any] | None,
                          limit: int = CALIBRATION_IMAGES) -> list[Path]:
    """Up to ``limit`` files of the training split recorded in a model's training record.

    The files are the training split's in hash order (a fixed, well-mixed sample).

    Raises:
        TrainingError: the model has no training record or its data folder is gone.
    """
    calibration = (record or {}).get("calibration")
    if not isinstance(calibration, dict) or "root" not in calibration:
        raise TrainingError(f"{model_file}: has no training record (it was not made by "
                            "`edge-model train`), so the calibration images are unknown; pass "
                            "--representative DIR with a few hundred typical camera images")
    root = Path(str(calibration["root"]))
    split = (record or {}).get("data", {}).get("split", {})
    try:
        fractions = SplitFractions(float(split.get("val", 0.1)), float(split.get("test", 0.1)))
        if calibration.get("layout") == "yolo":  # a detector's images/ and labels/
            from edge.modelbuild.yolo_layout import scan_yolo

            images = scan_yolo(root, fractions).split(str(calibration.get("split", "train")))
            images.sort(key=lambda i: hash_fraction("calibration/" + i.relative))
            return [i.path for i in images[:limit]]
        folder = scan_folder(root, fractions)
    except TrainingError as e:
        raise TrainingError(f"{model_file} was trained on {root}, which cannot be used for "
                            f"calibration now ({e}); pass --representative DIR") from e
    samples = folder.split(str(calibration.get("split", "train")))
    samples.sort(key=lambda s: hash_fraction("calibration/" + s.relative))
    return [s.path for s in samples[:limit]]


def _labels_for(model: Any, record: dict[str, Any] | None, labels: Sequence[str] | None
                ) -> tuple[str, ...]:
    classes = int(model.outputs[0].shape[-1])
    names = tuple(labels) if labels is not None else tuple((record or {}).get("classes", ()))
    if labels is None and names and (record or {}).get("task") == "detect":
        names = ("background", *names)  # a detector's channel 0 (edge.decode.centroids)
    if names and len(names) != classes:
        raise TrainingError(f"{len(names)} labels for a model with {classes} outputs; give one "
                            "label per class, in class order")
    return names


def quantize_file(
    model_file: Path, output: Path | None = None, representative: Sequence[Path] = (),
    progress: Progress | None = None, labels: Sequence[str] | None = None,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> QuantizeResult:
    """Quantize a ``.keras`` file to int8, check it, embed its labels, write it atomically.

    Args:
        model_file: the float model.
        output: the ``.tflite`` to write; default: beside the model, same name.
        representative: calibration images or folders; default: up to 300 images of the
            training split recorded in the model by ``edge-model train``.
        progress: called as calibration images are consumed.
        labels: class names to embed; default: the training record's classes.
        max_image_pixels: calibration images whose header claims more are skipped.

    Raises:
        ModelError: ``model_file`` is not a loadable Keras image model.
        TrainingError: no usable calibration images, conversion failed, or the result is
            degenerate (see :func:`check_quantization`).
        BackendError: TensorFlow is not installed.
    """
    output = output if output is not None else model_file.with_suffix(".tflite")
    check_output(output, ".tflite")
    record = read_metadata(model_file) if model_file.is_file() else None
    if representative:
        sources, where = list(representative), ", ".join(str(r) for r in representative)
    else:
        sources = training_split_images(model_file, record)
        where = f"the training split of {record['calibration']['root']}"  # type: ignore[index]
    images = read_images(sources, max_image_pixels)  # fails fast, before TensorFlow loads
    model = load_keras_model(model_file)
    names = _labels_for(model, record, labels)
    frames = [preprocess_frame(image, model_input_size(model)) for image in images]
    flatbuffer = quantize_keras(model, frames, progress)
    check_quantization(flatbuffer, frames)
    extra = ({METADATA_MEMBER: json.dumps(deployed_record(record)).encode()} if record
             else None)
    content = with_embedded_files(flatbuffer, names, extra) if names else flatbuffer
    write_atomic(output, content)
    return QuantizeResult(output, len(content), names, where, len(frames))


def deployed_record(record: dict[str, Any]) -> dict[str, Any]:
    """What of the training record travels inside the ``.tflite`` (and so into an MCU's flash
    through edge-export): classes, input size, task and the split fractions ``edge-model
    evaluate`` needs to find the held-out images. No paths, no history."""
    split = record.get("data", {}).get("split", {})
    kept: dict[str, Any] = {"classes": record.get("classes", []),
                            "input_size": record.get("input_size"),
                            "task": record.get("task", "classify")}
    if "threshold" in record:  # a detector's threshold, chosen on the validation split
        kept["threshold"] = record["threshold"]
    if "val" in split and "test" in split:
        kept["data"] = {"split": {"val": split["val"], "test": split["test"]}}
    return kept


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with :mod:`edge.outputs` (whole or not at all)."""
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise TrainingError(f"{path}: cannot write: {e.strerror or e}") from e
