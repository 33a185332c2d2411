"""Train a centroid detector on a YOLO-layout folder: ``edge-model train DATA OUT --task detect``.

The model is :func:`edge.modelbuild.detect.build_centroid_model` (MobileNetV2 cut at stride 8,
a per-cell softmax over background + classes). Each epoch trains on freshly augmented copies
of the training split (mirrors, whole-cell shifts and colour changes that keep the per-cell
targets exact: :func:`edge.modelbuild.detect.augment_cells`), with object cells weighing
``object_weight`` in the loss. After every epoch the validation split is decoded with the one
centroid decoder at several thresholds; the best centroid F1 is the epoch's measure. The
weights of the best epoch and the threshold that gave it are kept; the threshold goes into the
training record (and with ``edge-model quantize`` into the ``.tflite``), so every command
decodes as training measured.

The stopping rule and the learning-rate schedule are the classifier's
(:mod:`edge.modelbuild.schedule`), with the validation F1 in place of accuracy.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.decode.centroids import CentroidSpec
from edge.errors import TrainingError
from edge.modelbuild.build import import_tensorflow
from edge.modelbuild.dataset import SplitFractions
from edge.modelbuild.detect import (
    MATCH_DISTANCE_CELLS,
    STRIDE,
    augment_cells,
    build_centroid_model,
    cell_targets,
    cell_weights,
    grid_shape,
    match_centroids,
    total,
)
from edge.modelbuild.keras_file import check_output
from edge.modelbuild.schedule import EarlyStopping, StoppingRule, learning_rate, planned_epochs
from edge.modelbuild.train import (
    PREDICT_BATCH,
    BestEpoch,
    EpochRecord,
    Progress,
    ProgressFn,
    TrainResult,
    epoch_order,
    eta_seconds,
    prepare_from_scratch,
    run_summary,
    save_trained,
)
from edge.modelbuild.yolo_layout import Box, DetectionData, LabelledImage, scan_yolo

log = logging.getLogger(__name__)

TASK = "detect"
DEFAULT_WIDTH = 128  # input width when none is given; the height keeps the images' aspect
# MobileNetV2 0.5 has the same channels as 0.35 up to stride 2 (so the same peak arena at
# 128x96, about 197 KB), twice as many at stride 4: held-out F1 0.854 against 0.829 (int8,
# docs/train.md).
DEFAULT_ALPHA = 0.5
SCRATCH_LEARNING_RATE = 2e-3
PRETRAINED_LEARNING_RATE = 1e-3
# Updates a run is planned for at least: 45 epochs of 497 training images. 30 epochs gave
# held-out int8 F1 0.854 / 0.840 on two 600-image sets, 45 gave 0.914 / 0.902 (docs/train.md).
MIN_STEPS = 720
EPOCHS = (30, 120)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)  # tried on the validation split after every epoch


@dataclass(frozen=True)
class DetectSettings:
    """What ``edge-model train --task detect`` can be told.

    Attributes:
        alpha: MobileNetV2 width multiplier.
        size: input (width, height), both multiples of 8; None: :data:`DEFAULT_WIDTH` wide
            with the training images' aspect ratio.
        weights: None (from scratch), ``imagenet`` or a backbone file, as for classifiers.
        epochs: most epochs; None plans them from the data (at least :data:`MIN_STEPS`
            updates, 30-120 epochs: 45 for 600 images).
        object_weight: loss weight of a cell holding an object's centre (background: 1).
        neighbour_weight: loss weight of a background cell touching an object's cell.
        patience, min_epochs: the stopping rule (None: a tenth of the epochs, at least 5;
            half of the epochs).
    """

    alpha: float = DEFAULT_ALPHA
    size: tuple[int, int] | None = None
    weights: str | None = None
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float | None = None
    patience: int | None = None
    min_epochs: int | None = None
    fractions: SplitFractions = field(default_factory=SplitFractions)
    object_weight: float = 20.0
    neighbour_weight: float = 1.0
    max_shift_cells: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value, low in (("epochs", self.epochs, 1), ("batch_size", self.batch_size, 1),
                                 ("patience", self.patience, 1),
                                 ("min_epochs", self.min_epochs, 0)):
            if value is not None and value < low:
                raise TrainingError(f"{name.replace('_', '-')} (={value}) must be >= {low}")
        if self.size is not None and (self.size[0] % STRIDE or self.size[1] % STRIDE
                                      or min(self.size) < 32):
            raise TrainingError(f"input size (={self.size[0]}x{self.size[1]}) must have both "
                                f"sides multiples of {STRIDE}, at least 32")
        if self.object_weight <= 0 or self.neighbour_weight < 0:
            raise TrainingError("object-weight must be > 0 and neighbour weight >= 0")
        if self.weights not in (None, "imagenet") and not Path(str(self.weights)).is_file():
            raise TrainingError(f"{self.weights}: no such weights file; --weights takes none, "
                                "imagenet, a Keras *_no_top.h5 file, a .keras model or a "
                                "quantized MobileNetV2 .tflite")


def size_for_aspect(width: int, image_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) ``width`` wide with the height of ``image_size``'s aspect, both
    multiples of :data:`STRIDE`."""
    height = max(STRIDE, round(width * image_size[1] / image_size[0] / STRIDE) * STRIDE)
    return width - width % STRIDE, int(height)


def image_size_of(data: DetectionData) -> tuple[int, int]:
    """(width, height) of the data set's first decodable image."""
    import cv2

    for image in data.images:
        found = cv2.imread(str(image.path), cv2.IMREAD_UNCHANGED)
        if found is not None:
            return int(found.shape[1]), int(found.shape[0])
    raise TrainingError(f"{data.root}: no image decodes")


@dataclass(frozen=True)
class LoadedSplit:
    """One split in memory: pixels ``(N, H, W, 3)`` uint8 at the input size, and the boxes."""

    pixels: np.ndarray
    boxes: tuple[tuple[Box, ...], ...]
    skipped: tuple[str, ...]


def load_split(images: Sequence[LabelledImage], size: tuple[int, int]) -> LoadedSplit:
    """Read and squash ``images`` to ``size`` (width, height); undecodable ones are skipped
    and named."""
    from edge.camera.images import read_rgb
    from edge.errors import EdgeError
    from edge.runtime.preprocess import fit_frame

    pixels, boxes, skipped = [], [], []
    for image in images:
        try:
            frame = read_rgb(image.path)
        except (EdgeError, OSError, ValueError):
            skipped.append(image.relative)
            continue
        pixels.append(fit_frame(frame, size))
        boxes.append(image.boxes)
    empty = np.zeros((0, size[1], size[0], 3), np.uint8)
    return LoadedSplit(np.stack(pixels) if pixels else empty, tuple(boxes), tuple(skipped))


def predict_grids(model: Any, pixels: np.ndarray, batch: int = PREDICT_BATCH) -> np.ndarray:
    """The model's cell scores ``(N, rows, cols, 1 + C)`` for uint8 pixels, in batches."""
    out = [np.asarray(model(pixels[i:i + batch].astype(np.float32), training=False))
           for i in range(0, len(pixels), batch)]
    return np.concatenate(out) if out else np.empty((0,), np.float32)


def centroid_f1(grids: np.ndarray, boxes: Sequence[Sequence[Box]], classes: int,
                threshold: float) -> float:
    """Centroid F1 over all classes of float grids against their boxes."""
    spec = CentroidSpec(threshold=threshold)
    scores = [match_centroids(g, b, spec, classes) for g, b in zip(grids, boxes, strict=True)]
    return total(scores, classes)[-1].f1


def best_threshold(grids: np.ndarray, boxes: Sequence[Sequence[Box]], classes: int,
                   thresholds: Sequence[float] = THRESHOLDS) -> tuple[float, float]:
    """(F1, threshold) of the threshold with the best F1 (ties: the lower threshold)."""
    found = [(centroid_f1(grids, boxes, classes, t), -t) for t in thresholds]
    f1, negative = max(found)
    return f1, -negative


def cell_loss(grids: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean cross-entropy per cell (what training minimises)."""
    picked = np.take_along_axis(grids, targets[..., None], axis=-1)[..., 0]
    return float(np.sum(-np.log(np.clip(picked, 1e-7, 1.0)) * weights) / np.sum(weights))


@dataclass(frozen=True)
class DetectPlan:
    epochs: int
    rule: StoppingRule
    learning_rate: float


def detect_plan(settings: DetectSettings, train_images: int) -> DetectPlan:
    """Epochs, stopping rule and peak learning rate for ``train_images`` training images."""
    epochs = settings.epochs or planned_epochs(train_images, settings.batch_size,
                                               min_steps=MIN_STEPS, low=EPOCHS[0],
                                               high=EPOCHS[1])
    min_epochs = settings.min_epochs if settings.min_epochs is not None else epochs // 2
    patience = settings.patience or max(5, epochs // 10)
    rate = settings.learning_rate or (PRETRAINED_LEARNING_RATE if settings.weights
                                      else SCRATCH_LEARNING_RATE)
    return DetectPlan(epochs, StoppingRule(min(min_epochs, epochs), patience), rate)


class _DetectRun:
    """One run: the model, the data, the best weights and threshold so far, the history."""

    def __init__(self, model: Any, settings: DetectSettings, train: LoadedSplit,
                 val: LoadedSplit, classes: int, plan: DetectPlan,
                 progress: ProgressFn | None, stop: threading.Event) -> None:
        self.model, self.settings, self.plan = model, settings, plan
        self.classes, self.progress, self.stop = classes, progress, stop
        self.train, self.val = train, val
        rows_cols = (model.output_shape[2], model.output_shape[1])
        self.targets = cell_targets(train.boxes, rows_cols)
        self.val_targets = cell_targets(val.boxes, rows_cols)
        self.rng = np.random.default_rng(settings.seed)
        self.steps = max(1, math.ceil(len(train.pixels) / settings.batch_size))
        self.stopping = EarlyStopping(plan.rule)
        self.history: list[EpochRecord] = []
        self.kept = BestEpoch()  # by (val F1, -val loss)
        self.best_threshold = 0.5
        self.stopped_early = False
        self.step_s = self.val_s = 0.0
        self._step = 0

    def run(self) -> None:
        total_steps = self.plan.epochs * self.steps
        warmup = min(self.steps * 2, total_steps // 10)
        for epoch in range(1, self.plan.epochs + 1):
            start = time.perf_counter()
            pixels, cells = augment_cells(self.rng, self.train.pixels, self.targets,
                                          self.settings.max_shift_cells)
            weights = cell_weights(cells, self.settings.object_weight,
                                   self.settings.neighbour_weight)
            order = epoch_order(self.rng, len(pixels), self.steps * self.settings.batch_size)
            losses: list[float] = []
            for step in range(self.steps):
                if self.stop.is_set():
                    break
                index = order[step * self.settings.batch_size:(step + 1)
                              * self.settings.batch_size]
                rate = learning_rate(self._step, total_steps, self.plan.learning_rate, warmup)
                self.model.optimizer.learning_rate.assign(rate)
                t0 = time.perf_counter()
                logs = self.model.train_on_batch(pixels[index], cells[index],
                                                 sample_weight=weights[index],
                                                 return_dict=True)
                if self._step > 0:
                    took = time.perf_counter() - t0
                    self.step_s = took if self.step_s == 0 else 0.9 * self.step_s + 0.1 * took
                self._step += 1
                losses.append(float(logs["loss"]))
                self._report(epoch, step + 1, losses, start, rate)
            if not losses:
                return
            state = self._end_epoch(epoch, losses, start)
            if self.stop.is_set():
                return
            if state:
                self.stopped_early = True
                return

    def _report(self, epoch: int, step: int, losses: list[float], start: float,
                rate: float) -> None:
        if self.progress is None:
            return
        eta_epoch, eta_run = eta_seconds(self.step_s, self.steps - step, self.steps,
                                         self.plan.epochs - epoch, self.val_s)
        if self.step_s == 0:
            eta_epoch = eta_run = math.nan
        self.progress(Progress(TASK, epoch, self.plan.epochs, step, self.steps,
                               float(np.mean(losses)), math.nan, time.perf_counter() - start,
                               eta_epoch, eta_run, learning_rate=rate, metric="F1"))

    def _end_epoch(self, epoch: int, losses: list[float], start: float) -> bool:
        t0 = time.perf_counter()
        grids = predict_grids(self.model, self.val.pixels)
        f1, threshold = best_threshold(grids, self.val.boxes, self.classes)
        val_loss = cell_loss(grids, self.val_targets,
                             cell_weights(self.val_targets, self.settings.object_weight,
                                          self.settings.neighbour_weight))
        self.val_s = time.perf_counter() - t0
        partial = len(losses) < self.steps
        record = EpochRecord(epoch, TASK, float(np.mean(losses)), math.nan, val_loss, f1,
                             time.perf_counter() - start, partial=partial)
        self.history.append(record)
        improved = self.kept.offer(epoch, (f1, -val_loss), partial, self.model)
        if improved:
            self.best_threshold = threshold
        stop, waiting = False, ""
        if not partial:
            state = self.stopping.update(f1, val_loss)
            stop, waiting = state.stop, state.waiting_for.replace("val acc", "val F1")
        log.debug("epoch %d: val F1 %.4f at threshold %.2f, loss %.4f", epoch, f1, threshold,
                  val_loss)
        if self.progress is not None:
            self.progress(Progress(TASK, epoch, self.plan.epochs, len(losses), self.steps,
                                   record.loss, math.nan, record.seconds, 0.0,
                                   eta_seconds(self.step_s, 0, self.steps,
                                               self.plan.epochs - epoch, self.val_s)[1],
                                   f1, val_loss, improved, 0.0, waiting, metric="F1"))
        return stop


def _compile(tf: Any, model: Any, rate: float) -> None:
    model.compile(optimizer=tf.keras.optimizers.Adam(rate), jit_compile=False,
                  loss="sparse_categorical_crossentropy")


def train_detector(data: DetectionData, settings: DetectSettings, *,
                   progress: ProgressFn | None = None, stop: threading.Event | None = None
                   ) -> TrainResult:
    """Train a centroid detector on ``data``'s training split, choosing by validation F1.

    Raises:
        TrainingError: no class has a training object, the validation split is empty, or
            the model cannot be built.
        KeyboardInterrupt: ``stop`` was set before the first batch was trained.
    """
    size = settings.size or size_for_aspect(DEFAULT_WIDTH, image_size_of(data))
    train = load_split(data.split("train"), size)
    val = load_split(data.split("val"), size)
    classes = len(data.classes)
    if not any(train.boxes):
        raise TrainingError(f"{data.root}: no labelled object in the training split; label "
                            "some images (labels/NAME.txt)")
    if len(val.pixels) == 0:
        raise TrainingError(f"{data.root}: no decodable image fell in the val split "
                            f"({len(data.images)} images in all); add images or raise --val")
    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    model = build_centroid_model(settings.alpha, size, classes, weights=settings.weights)
    plan = detect_plan(settings, len(train.pixels))
    run = _DetectRun(model, settings, train, val, classes, plan, progress,
                     stop or threading.Event())
    backbone = model.get_layer("backbone")
    if not settings.weights:
        prepare_from_scratch(backbone, run.steps)
    else:  # statistics from far more images than a small data set has
        for layer in backbone.layers:
            if "BatchNormalization" in type(layer).__name__:
                layer.trainable = False
    _compile(tf, model, plan.learning_rate)
    log.info("planned %d epochs; %s; input %dx%d, grid %dx%d", plan.epochs, plan.rule, *size,
             *grid_shape(size))
    run.run()
    run.kept.restore(model)
    held_out = load_split(data.split("test"), size).skipped
    skipped = train.skipped + val.skipped + held_out
    return TrainResult.of(run, model, skipped, _metadata(data, settings, size, run, skipped))


def _metadata(data: DetectionData, settings: DetectSettings, size: tuple[int, int],
              run: _DetectRun, skipped: tuple[str, ...]) -> dict[str, Any]:
    root = str(data.root.resolve())
    splits = {s: len(data.split(s)) for s in ("train", "val", "test")}
    return {
        "classes": list(data.classes),
        "input_size": list(size),
        "task": TASK,
        "threshold": run.best_threshold,
        "match_distance_cells": MATCH_DISTANCE_CELLS,
        "architecture": {"family": "MobileNetV2-centroids", "alpha": settings.alpha,
                         "input_size": list(size), "grid": list(grid_shape(size)),
                         "cut": "block_6_expand_relu", "weights": settings.weights or "none"},
        "data": {"root": root, "layout": "yolo",
                 "split": {"method": "sha256 of the path relative to root",
                           "val": settings.fractions.val, "test": settings.fractions.test},
                 "counts": {"images": splits, "objects": data.objects()},
                 "problems": list(data.problems), "skipped": list(skipped)},
        "calibration": {"root": root, "split": "train", "layout": "yolo"},
        "training": {
            **run_summary(run, settings.seed, settings.batch_size),
            "best_val_f1": round(run.kept.score[0], 5),
            "learning_rate": run.plan.learning_rate, "object_weight": settings.object_weight,
            "neighbour_weight": settings.neighbour_weight,
            "history": [_history(r) for r in run.history]},
    }


def _history(record: EpochRecord) -> dict[str, Any]:
    return {"epoch": record.epoch, "loss": round(record.loss, 5),
            "val_loss": round(record.val_loss, 5), "val_f1": round(record.val_accuracy, 5),
            "seconds": round(record.seconds, 2), "partial": record.partial}


def train_detector_file(data: Path, output: Path, settings: DetectSettings, *,
                        progress: ProgressFn | None = None,
                        stop: threading.Event | None = None,
                        extra: dict[str, Any] | None = None) -> TrainResult:
    """Scan ``data`` (YOLO layout), train, and save the best model with its record.

    Raises:
        TrainingError, ModelError: bad data, settings or output path.
        KeyboardInterrupt: stopped before anything was trained (nothing is written).
    """
    check_output(output)
    scanned = scan_yolo(data, settings.fractions)
    return save_trained(train_detector(scanned, settings, progress=progress, stop=stop), output,
                        extra)
