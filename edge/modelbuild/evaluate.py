"""``edge-model evaluate``: accuracy of the float model, the int8 model on LiteRT and on TFLite
Micro, on the held-out split, with per-class precision and recall and a confusion matrix.

The int8 model is run through the runtime's own :class:`~edge.runtime.Classifier`
preprocessing (the frames are already at the input size, so only the quantization applies),
and TFLite Micro runs the same int8 tensors in a child process, as everywhere in edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError, TrainingError
from edge.model.labels import embedded_record
from edge.modelbuild.dataset import LoadedImages, SplitFractions, load_images, scan_folder
from edge.modelbuild.keras_file import read_metadata


@dataclass(frozen=True)
class Scores:
    """One model's predictions on the evaluation images, and what follows from them."""

    name: str
    predicted: np.ndarray
    truth: np.ndarray
    classes: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predicted == self.truth)) if len(self.truth) else 0.0

    @property
    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.truth, self.predicted, len(self.classes))

    def to_dict(self) -> dict[str, Any]:
        precision, recall = precision_recall(self.confusion)
        return {"accuracy": round(self.accuracy, 5),
                "per_class": {name: {"precision": _round(p), "recall": _round(r),
                                     "support": int(n)}
                              for name, p, r, n in zip(self.classes, precision, recall,
                                                       self.confusion.sum(axis=1), strict=True)},
                "confusion": self.confusion.tolist()}


def _round(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 5)


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """``m[i, j]`` = images of class i predicted as class j."""
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def precision_recall(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (of the predictions of a class) and recall (of its images); NaN
    where a class was never predicted or has no images."""
    diagonal = np.diag(confusion).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return diagonal / confusion.sum(axis=0), diagonal / confusion.sum(axis=1)


@dataclass(frozen=True)
class Evaluation:
    """Every model evaluated on the same images."""

    split: str
    images: int
    skipped: tuple[str, ...]
    classes: tuple[str, ...]
    scores: tuple[Scores, ...]

    def score(self, name: str) -> Scores | None:
        return next((s for s in self.scores if s.name == name), None)

    @property
    def int8_drop_points(self) -> float | None:
        """Float accuracy minus int8 accuracy, in percentage points."""
        float_, int8 = self.score("float"), self.score("int8")
        if float_ is None or int8 is None:
            return None
        return round(100.0 * (float_.accuracy - int8.accuracy), 3)

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "images": self.images, "skipped": list(self.skipped),
                "classes": list(self.classes),
                "models": {s.name: s.to_dict() for s in self.scores},
                "int8_drop_points": self.int8_drop_points}


def _tflite_record(path: Path) -> dict[str, Any] | None:
    return embedded_record(path.read_bytes())


def _record_and_files(model: Path, tflite: Path | None) -> tuple[dict[str, Any] | None,
                                                                  Path | None, Path | None]:
    """(training record, float model, int8 model) from what the user named."""
    if not model.is_file():
        raise ModelError(f"{model}: no such model file")
    if model.suffix == ".tflite":
        return _tflite_record(model), None, model
    if model.suffix != ".keras":
        raise ModelError(f"{model}: give the .keras float model or the .tflite int8 model")
    beside = model.with_suffix(".tflite")
    tflite = tflite or (beside if beside.is_file() else None)
    return read_metadata(model), model, tflite


def _fractions(record: dict[str, Any] | None, split: str) -> SplitFractions:
    if record is None:
        if split != "all":
            raise TrainingError("the model has no training record (not made by `edge-model "
                                "train`), so its held-out split is unknown; pass --split all "
                                "to evaluate on every image of DATA")
        return SplitFractions()
    recorded = record.get("data", {}).get("split", {})
    return SplitFractions(float(recorded.get("val", 0.1)), float(recorded.get("test", 0.1)))


def _class_map(data_classes: Sequence[str], model_classes: Sequence[str], data: Path
               ) -> np.ndarray:
    if not model_classes:
        return np.arange(len(data_classes))
    index = {name: i for i, name in enumerate(model_classes)}
    unknown = [c for c in data_classes if c not in index]
    if unknown:
        raise TrainingError(f"{data / unknown[0]}: {unknown[0]!r} is not a class of the model "
                            f"(its classes: {', '.join(model_classes)})")
    return np.asarray([index[c] for c in data_classes])


def float_scores(model_file: Path, images: LoadedImages, classes: tuple[str, ...]) -> Scores:
    from edge.modelbuild.keras_file import load_keras_model
    from edge.modelbuild.train import predict

    model = load_keras_model(model_file)
    predicted = np.argmax(predict(model, images.pixels), axis=1)
    return Scores("float", predicted, images.labels, classes)


def int8_inputs(tflite: Path, images: LoadedImages) -> tuple[list[np.ndarray], np.ndarray]:
    """The int8 input tensors the runtime makes of ``images``, and LiteRT's predictions."""
    from edge.runtime import Classifier

    tensors, predicted = [], []
    with Classifier.open(str(tflite), threads=2) as clf:
        for frame in images.pixels:
            tensor = clf.preprocess(frame).copy()
            tensors.append(tensor)
            predicted.append(int(np.argmax(clf.run(tensor))))
    return tensors, np.asarray(predicted, np.int64)


def micro_predictions(tflite: Path, tensors: Sequence[np.ndarray]) -> np.ndarray:
    """TFLite Micro's top-1 for each input tensor, from the pip interpreter in one child process
    (:class:`edge.runtime.tflm.TflmInterpreter`, its arena as planned for the pip package)."""
    from edge.model import read_model
    from edge.runtime.tflm import TflmInterpreter

    predicted: list[int] = []
    with TflmInterpreter(read_model(tflite)) as interpreter:
        for tensor in tensors:
            interpreter.set_tensor(0, tensor)
            interpreter.invoke()
            predicted.append(int(np.argmax(interpreter.get_tensor(0))))
    return np.asarray(predicted, np.int64)


def evaluate(model: Path, data: Path, *, tflite: Path | None = None, micro: bool = False,
             split: str = "test") -> Evaluation:
    """Evaluate the float and/or int8 model on ``split`` of ``data``.

    Raises:
        ModelError: a model file is missing or not a model.
        TrainingError: the data does not match the model, or the split is empty or unknown.
    """
    record, float_file, int8_file = _record_and_files(model, tflite)
    if micro and int8_file is None:
        raise TrainingError(f"--micro needs the int8 model; run `edge-model quantize {model}` "
                            "first or pass --tflite")
    folder = scan_folder(data, _fractions(record, split))
    classes = tuple((record or {}).get("classes") or folder.classes)
    mapping = _class_map(folder.classes, classes, data)
    size = tuple((record or {}).get("input_size") or _input_size(float_file, int8_file))
    loaded = load_images(folder.split(split), (int(size[0]), int(size[1])))
    if not len(loaded.labels):
        raise TrainingError(f"{data}: no decodable image in the {split} split")
    images = LoadedImages(loaded.pixels, mapping[loaded.labels], loaded.files, loaded.skipped)
    if int8_file is not None:
        _check_int8_classes(int8_file, classes)
    scores = []
    if float_file is not None:
        scores.append(float_scores(float_file, images, classes))
    if int8_file is not None:
        tensors, predicted = int8_inputs(int8_file, images)
        scores.append(Scores("int8", predicted, images.labels, classes))
        if micro:
            scores.append(Scores("micro", micro_predictions(int8_file, tensors),
                                 images.labels, classes))
    return Evaluation(split, len(images.labels), images.skipped, classes, tuple(scores))


def _check_int8_classes(tflite: Path, classes: Sequence[str]) -> None:
    """The int8 model must score the same classes, in the same order, as the float model or
    the data: else its confusion matrix would index classes that do not exist."""
    from edge.model import read_model

    model = read_model(tflite)
    outputs = model.output_tensors[0].shape[-1] if model.output_tensors else 0
    if outputs != len(classes):
        raise TrainingError(f"{tflite}: has {outputs} outputs, but the classes are "
                            f"{len(classes)} ({', '.join(classes)}); pass the .tflite made "
                            "from this model (`edge-model quantize MODEL.keras`)")
    if model.labels and tuple(model.labels) != tuple(classes):
        raise TrainingError(f"{tflite}: its labels ({', '.join(model.labels)}) are not the "
                            f"classes {', '.join(classes)}; pass the .tflite made from this "
                            "model (`edge-model quantize MODEL.keras`)")


def _input_size(float_file: Path | None, int8_file: Path | None) -> tuple[int, int]:
    if int8_file is not None:
        from edge.model import read_model

        shape = read_model(int8_file).input_tensors[0].shape
        return int(shape[2]), int(shape[1])
    from edge.modelbuild.keras_file import load_keras_model, model_input_size

    assert float_file is not None
    return model_input_size(load_keras_model(float_file))
