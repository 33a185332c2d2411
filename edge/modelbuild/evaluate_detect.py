"""``edge-model evaluate`` for centroid detectors: per-class precision, recall and F1.

A detection counts when its centre lies within :data:`~edge.modelbuild.detect.MATCH_DISTANCE_CELLS`
cells (of the output grid) of an unmatched labelled object of its class
(:func:`edge.modelbuild.detect.match_centroids`). The float model's grids and the int8 model's
(LiteRT, its own quantized output decoded with the integer rule the firmware uses) are scored
on the same images, at the threshold stored in the model's training record.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.decode.centroids import CentroidSpec
from edge.errors import ModelError, TrainingError
from edge.model.labels import embedded_record
from edge.modelbuild.dataset import SplitFractions
from edge.modelbuild.detect import MATCH_DISTANCE_CELLS, CentroidScore, match_centroids, total
from edge.modelbuild.keras_file import read_metadata
from edge.modelbuild.yolo_layout import scan_yolo

DETECT = "detect"
DEFAULT_THRESHOLD = 0.5


def is_detector_record(record: dict[str, Any] | None) -> bool:
    return bool(record) and (record or {}).get("task") == DETECT


def model_record(model: Path) -> dict[str, Any] | None:
    """The training record of a ``.keras`` or ``.tflite`` file (None: none or unreadable)."""
    try:
        if model.suffix == ".tflite":
            return embedded_record(model.read_bytes())
        if model.suffix == ".keras":
            return read_metadata(model)
    except (OSError, ModelError):
        return None
    return None


@dataclass(frozen=True)
class DetectorScores:
    """One model's centroid matching: per class, then all classes last."""

    name: str
    scores: tuple[CentroidScore, ...]

    @property
    def overall(self) -> CentroidScore:
        return self.scores[-1]


@dataclass(frozen=True)
class DetectorEvaluation:
    split: str
    images: int
    objects: int
    skipped: tuple[str, ...]
    classes: tuple[str, ...]
    threshold: float
    distance_cells: float
    cell_pixels: tuple[float, float]  # one cell in the images' pixels (width, height)
    results: tuple[DetectorScores, ...]

    def result(self, name: str) -> DetectorScores | None:
        return next((r for r in self.results if r.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"task": DETECT, "split": self.split, "images": self.images,
                "objects": self.objects, "skipped": list(self.skipped),
                "classes": list(self.classes), "threshold": self.threshold,
                "match_distance_cells": self.distance_cells,
                "cell_pixels": [round(v, 2) for v in self.cell_pixels],
                "scores": {r.name: {**{c: s.to_dict() for c, s in
                                       zip(self.classes, r.scores, strict=False)},
                                    "all": r.overall.to_dict()} for r in self.results}}


def _files(model: Path, tflite: Path | None) -> tuple[Path | None, Path | None]:
    if not model.is_file():
        raise ModelError(f"{model}: no such model file")
    if model.suffix == ".tflite":
        return None, model
    beside = model.with_suffix(".tflite")
    return model, tflite or (beside if beside.is_file() else None)


def int8_grids(tflite: Path, pixels: np.ndarray) -> tuple[list[np.ndarray], CentroidSpec]:
    """LiteRT's raw (quantized) output grids of the int8 model, and their quantization."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite), num_threads=2)
    interpreter.allocate_tensors()
    given, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = given["quantization"]
    expected = tuple(int(v) for v in given["shape"][1:3])
    if expected != pixels.shape[1:3]:
        raise TrainingError(f"{tflite}: input {expected[1]}x{expected[0]} is not the "
                            f"record's input size {pixels.shape[2]}x{pixels.shape[1]}")
    info = np.iinfo(given["dtype"]) if np.issubdtype(given["dtype"], np.integer) else None
    grids = []
    for frame in pixels:
        tensor = frame.astype(np.float32)
        if scale and info is not None:
            tensor = np.clip(np.round(tensor / scale + zero), info.min, info.max)
        interpreter.set_tensor(given["index"], tensor.astype(given["dtype"])[None])
        interpreter.invoke()
        grids.append(interpreter.get_tensor(out["index"])[0].copy())
    out_scale, out_zero = out["quantization"]
    return grids, CentroidSpec(float(out_scale), int(out_zero))


def evaluate_detector(model: Path, data: Path, *, tflite: Path | None = None,
                      split: str = "test", threshold: float | None = None
                      ) -> DetectorEvaluation:
    """Centroid precision/recall/F1 of the float and/or int8 detector on ``split`` of ``data``.

    Raises:
        ModelError: a model file is missing or not a model.
        TrainingError: the data does not match the model, or the split is empty.
    """
    from dataclasses import replace

    from edge.modelbuild.train_detect import load_split, predict_grids

    if threshold is not None and not 0 < threshold < 1:
        raise TrainingError(f"threshold (={threshold}) must be in (0, 1)")
    float_file, int8_file = _files(model, tflite)
    record = model_record(model) or (model_record(int8_file) if int8_file else None) or {}
    if split != "all" and "data" not in record:
        raise TrainingError(f"{model}: has no training record, so its held-out split is "
                            "unknown; pass --split all to evaluate on every image of DATA")
    recorded = record.get("data", {}).get("split", {})
    fractions = SplitFractions(float(recorded.get("val", 0.1)), float(recorded.get("test", 0.1)))
    found = scan_yolo(data, fractions)
    classes = tuple(record.get("classes") or found.classes)
    if tuple(found.classes) != classes:
        raise TrainingError(f"{data}: its classes ({', '.join(found.classes)}) are not the "
                            f"model's ({', '.join(classes)}), in the same order")
    size = tuple(int(v) for v in record.get("input_size") or ())
    if len(size) != 2:
        raise TrainingError(f"{model}: its record has no input size; quantize it with "
                            "`edge-model quantize` from the .keras edge-model train wrote")
    images = found.split(split)
    loaded = load_split(images, (size[0], size[1]))
    if not len(loaded.pixels):
        raise TrainingError(f"{data}: no decodable image in the {split} split")
    cut = threshold if threshold is not None else float(record.get("threshold",
                                                                   DEFAULT_THRESHOLD))
    count = len(classes)
    results = []
    if float_file is not None:
        from edge.modelbuild.keras_file import load_keras_model

        grids = predict_grids(load_keras_model(float_file), loaded.pixels)
        spec = CentroidSpec(threshold=cut)
        results.append(DetectorScores("float", tuple(total(
            [match_centroids(g, b, spec, count) for g, b in zip(grids, loaded.boxes,
                                                                strict=True)], count))))
    if int8_file is not None:
        raw, spec = int8_grids(int8_file, loaded.pixels)
        spec = replace(spec, threshold=cut)
        results.append(DetectorScores("int8", tuple(total(
            [match_centroids(g, b, spec, count) for g, b in zip(raw, loaded.boxes,
                                                                strict=True)], count))))
    from edge.modelbuild.train_detect import image_size_of

    width, height = image_size_of(found)
    cell = (width / (size[0] / 8), height / (size[1] / 8))
    objects = sum(len(b) for b in loaded.boxes)
    return DetectorEvaluation(split, len(loaded.pixels), objects, loaded.skipped, classes, cut,
                              MATCH_DISTANCE_CELLS, cell, tuple(results))
