"""Train a MobileNetV2 classifier on a folder of images: ``edge-model train``.

From scratch (``weights=None``) every layer trains from the start, with each residual block
starting as the identity and batch-norm statistics whose momentum suits the run's length (see
:func:`start_residual_blocks_as_identity` and :func:`batch_norm_momentum`). With pre-trained
weights (``imagenet`` or a local backbone file) training has two stages: first only the new
head, with the backbone frozen, then the head and the last ``fine_tune_blocks``
inverted-residual blocks at a tenth of the learning rate. Batch normalisation stays frozen in
a pre-trained backbone (its statistics come from far more images than a small data set has).

After every epoch the model is measured on the validation split; the weights with the best
validation accuracy are kept, training stops when it has not improved for ``patience`` epochs,
and a stop request (Ctrl-C) ends the run after the batch in hand with those best weights.
Everything is seeded and TensorFlow's op determinism is on, so a run is reproducible on the
same machine and versions.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import TrainingError
from edge.modelbuild.augment import SMALL_DATA, Augmentation, augment_batch
from edge.modelbuild.build import BACKBONE, build_mobilenetv2, import_tensorflow
from edge.modelbuild.dataset import (
    ImageFolder,
    LoadedImages,
    SplitFractions,
    load_images,
    require_every_class,
    scan_folder,
)
from edge.modelbuild.keras_file import check_output, save_keras
from edge.modelbuild.schedule import (
    EarlyStopping,
    StoppingRule,
    StopState,
    learning_rate,
    planned_epochs,
)

log = logging.getLogger(__name__)

SCRATCH_LEARNING_RATE = 2e-3
# From scratch, a run is planned by training steps (updates), not passes over the data: a small
# data set gets more epochs. Measured on 150 images per class (docs/train.md): shapes a quarter
# to three fifths of the frame reached 77 % of a separate folder in 1,500 steps, 97 % in 2,400.
SCRATCH_MIN_STEPS = 2400
SCRATCH_EPOCHS = (30, 200)
# From scratch below this input size, the first SCRATCH_LARGER_SHARE of the epochs train at a
# third larger input (96 -> 128), where the objects span more pixels: shapes 0.15-0.45 of the
# frame, 150 per class, reached 88 % of a separate folder at 96x96 this way in 2,200 steps and
# 43 % at 96x96 throughout (docs/train.md). The network is fully convolutional, so the weights
# carry over; the model saved is at the size asked.
SCRATCH_LARGER_BELOW = 128
SCRATCH_LARGER_SHARE = 0.55
# Below this many training images per class, from scratch is a gamble (docs/train.md) and
# `edge-model train` says which --weights to use instead.
SCRATCH_IMAGES_PER_CLASS = 2000
PRETRAINED_EPOCHS = 30
HEAD_MIN_STEPS = 120  # a new head needs about this many updates before fine-tuning starts
HEAD_EPOCHS = (3, 10)
HEAD_LEARNING_RATE = 1e-3
FINE_TUNE_FACTOR = 0.1
PREDICT_BATCH = 64
LAST_BLOCK = 16  # MobileNetV2's inverted-residual blocks are block_1 .. block_16


@dataclass(frozen=True)
class TrainSettings:
    """What ``edge-model train`` can be told; see ``edge-model train --help``.

    Attributes:
        weights: None (from scratch), ``imagenet``, or the path of a backbone: a Keras
            ``*_no_top.h5`` weights file, a ``.keras`` model made by edge-model, or a
            quantized MobileNetV2 ``.tflite`` (see :mod:`edge.modelbuild.weights`).
        epochs: most epochs in all (head and fine-tuning stages together); None plans them
            from the data (:func:`run_plan`).
        learning_rate: peak learning rate; None takes 2e-3 from scratch, 1e-3 for a new head.
        patience: epochs without progress of the smoothed validation measures before
            training stops; None: a tenth of the planned epochs, at least 5.
        min_epochs: epochs always run; None: a third of the planned epochs from scratch.
        label_smoothing: share of each target spread over the other classes; None: 0.1 for
            small data (below SMALL_DATA training images per class), else 0.
        weight_decay: decoupled weight decay of AdamW from scratch; None: 1e-4 for small
            data, else 0 (plain Adam).
        head_epochs: epochs of the head-only stage (pre-trained weights only); None: enough
            for :data:`HEAD_MIN_STEPS` steps, 3-10 epochs.
        fine_tune_blocks: how many of the last blocks are fine-tuned (pre-trained weights).
    """

    alpha: float = 0.35
    resolution: int = 96
    weights: str | None = None
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float | None = None
    patience: int | None = None
    min_epochs: int | None = None
    fractions: SplitFractions = field(default_factory=SplitFractions)
    augmentation: Augmentation = field(default_factory=Augmentation)
    class_weights: bool = True
    head_epochs: int | None = None
    fine_tune_blocks: int = 3
    dropout: float = 0.2
    label_smoothing: float | None = None
    weight_decay: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (("epochs", self.epochs, 1), ("batch_size", self.batch_size, 1),
                  ("patience", self.patience, 1), ("min_epochs", self.min_epochs, 0),
                  ("head_epochs", self.head_epochs, 0),
                  ("fine_tune_blocks", self.fine_tune_blocks, 0))
        for name, value, low in checks:
            if value is not None and value < low:
                raise TrainingError(f"{name.replace('_', '-')} (={value}) must be >= {low}")
        if self.fine_tune_blocks > LAST_BLOCK:
            raise TrainingError(f"fine-tune-blocks (={self.fine_tune_blocks}) must be <= "
                                f"{LAST_BLOCK} (MobileNetV2 has {LAST_BLOCK} blocks)")
        if self.weights not in (None, "imagenet") and not Path(str(self.weights)).is_file():
            raise TrainingError(f"{self.weights}: no such weights file; --weights takes none, "
                                "imagenet, a Keras *_no_top.h5 file, a .keras model or a "
                                "quantized MobileNetV2 .tflite")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise TrainingError(f"learning-rate (={self.learning_rate}) must be in (0, 1)")

    @property
    def pretrained(self) -> bool:
        return self.weights is not None


@dataclass(frozen=True)
class RunPlan:
    """How long a run is: planned epochs and the stopping rule, resolved from the settings
    and the size of the training split."""

    epochs: int
    rule: StoppingRule
    head_epochs: int = 0
    label_smoothing: float = 0.0
    weight_decay: float = 0.0


def run_plan(settings: TrainSettings, train_images: int, classes: int = 1) -> RunPlan:
    """Epochs and stopping rule for ``train_images`` training images.

    From scratch, the run is planned for :data:`SCRATCH_MIN_STEPS` updates (150 images per
    class and 3 classes: 12 steps an epoch, 200 epochs), never stops in its first third and
    waits a tenth of it for progress; with pre-trained weights, 30 epochs and patience 5.
    """
    head = 0
    if settings.pretrained:
        epochs = settings.epochs or PRETRAINED_EPOCHS
        head = settings.head_epochs if settings.head_epochs is not None else planned_epochs(
            train_images, settings.batch_size, min_steps=HEAD_MIN_STEPS, low=HEAD_EPOCHS[0],
            high=HEAD_EPOCHS[1])
        head = min(head, epochs)
        min_epochs = settings.min_epochs if settings.min_epochs is not None else min(
            epochs, head + 3)
    else:
        epochs = settings.epochs or planned_epochs(
            train_images, settings.batch_size, min_steps=SCRATCH_MIN_STEPS,
            low=SCRATCH_EPOCHS[0], high=SCRATCH_EPOCHS[1])
        min_epochs = settings.min_epochs if settings.min_epochs is not None else epochs // 3
    patience = settings.patience or max(5, epochs // 10)
    small = train_images / max(classes, 1) < SMALL_DATA
    smoothing = settings.label_smoothing if settings.label_smoothing is not None else (
        0.1 if small else 0.0)
    decay = settings.weight_decay if settings.weight_decay is not None else (
        1e-4 if small else 0.0)
    return RunPlan(epochs, StoppingRule(min(min_epochs, epochs), patience), head, smoothing,
                   decay)


@dataclass(frozen=True)
class Stage:
    """One phase of training: which layers learn, for how many epochs, how fast."""

    name: str
    epochs: int
    learning_rate: float
    trainable_blocks: int | None  # None: the whole backbone; 0: none (head only)
    resolution: int = 0  # the input size it trains at; 0: the model's


def plan_stages(settings: TrainSettings, epochs: int | None = None,
                head_epochs: int | None = None) -> list[Stage]:
    """The stages of a run of ``epochs`` (default: the settings' or 30): one from scratch;
    head (``head_epochs``, default: the settings' or 3) then fine-tuning with pre-trained
    weights."""
    epochs = epochs or settings.epochs or PRETRAINED_EPOCHS
    if not settings.pretrained:
        rate = settings.learning_rate or SCRATCH_LEARNING_RATE
        larger = larger_resolution(settings.resolution)
        first = round(epochs * SCRATCH_LARGER_SHARE) if larger and epochs >= 10 else 0
        stages = [Stage(f"train {larger}", first, rate, None, larger)] if first else []
        return [*stages, Stage("train", epochs - first, rate, None)]
    rate = settings.learning_rate or HEAD_LEARNING_RATE
    head = min(head_epochs if head_epochs is not None else settings.head_epochs or 3, epochs)
    stages = [Stage("head", head, rate, 0)] if head else []
    if epochs > head and settings.fine_tune_blocks > 0:
        stages.append(Stage("fine-tune", epochs - head, rate * FINE_TUNE_FACTOR,
                            settings.fine_tune_blocks))
    elif epochs > head:
        stages.append(Stage("head", epochs - head, rate, 0))
    return stages


def larger_resolution(resolution: int) -> int:
    """The input size the first epochs from scratch train at: a third larger, rounded up to a
    multiple of 16 (96 -> 128, 64 -> 96); 0 at :data:`SCRATCH_LARGER_BELOW` and above."""
    if resolution >= SCRATCH_LARGER_BELOW:
        return 0
    return math.ceil(resolution * 4 / 3 / 16) * 16


def class_weights(labels: np.ndarray, classes: int) -> np.ndarray:
    """``n / (classes * n_c)`` per class: every class weighs as much in the loss overall."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    return np.where(counts > 0, len(labels) / (classes * np.maximum(counts, 1)), 0.0)


def learned_little(val_accuracy: float, classes: int) -> bool:
    """Whether a validation accuracy is nearer chance (``1 / classes``) than a perfect score:
    the model has not learned the objects (from scratch: small objects, or too few images)."""
    chance = 1.0 / max(classes, 1)
    return classes > 1 and val_accuracy < (chance + 1.0) / 2


def batch_norm_momentum(steps_per_epoch: int) -> float:
    """Momentum of batch-norm statistics so they settle within about a third of an epoch."""
    return float(min(0.99, max(0.9, 1.0 - 3.0 / max(steps_per_epoch, 1))))


def start_residual_blocks_as_identity(backbone: Any) -> int:
    """Zero the scale (gamma) of the last batch norm in every residual branch of ``backbone``.

    Each inverted-residual block with a shortcut (``block_N_add``) then starts as the identity,
    so a network from random weights first behaves like its shallow path of strided and
    widening blocks and deepens as the branches learn (Goyal et al., 2017, "zero-gamma").
    MobileNetV2 0.35/96 on rendered digits: validation 93 % after 4 epochs instead of 68 %
    (docs/train.md). Returns how many branches were zeroed (10 in MobileNetV2, any width).
    The graph is unchanged, so nothing else (conversion, export) sees it.
    """
    zeroed = 0
    names = {layer.name for layer in backbone.layers}
    for name in sorted(names):
        block = name.removesuffix("_add")
        if block != name and f"{block}_project_BN" in names:
            gamma = backbone.get_layer(f"{block}_project_BN").gamma
            gamma.assign(np.zeros(gamma.shape, np.float32))
            zeroed += 1
    return zeroed


def set_batch_norm_momentum(backbone: Any, steps_per_epoch: int) -> None:
    """Batch-norm statistics that keep up with a short run (:func:`batch_norm_momentum`)."""
    for layer in backbone.layers:
        if hasattr(layer, "momentum"):
            layer.momentum = batch_norm_momentum(steps_per_epoch)


def prepare_from_scratch(backbone: Any, steps_per_epoch: int) -> None:
    """:func:`set_batch_norm_momentum` and residual branches that start as the identity, for a
    backbone from random weights."""
    set_batch_norm_momentum(backbone, steps_per_epoch)
    start_residual_blocks_as_identity(backbone)


def is_trainable(layer_name: str, blocks: int | None) -> bool:
    """Whether a backbone layer learns when the last ``blocks`` blocks are fine-tuned."""
    if blocks is None:
        return True
    if blocks == 0:
        return False
    if layer_name.startswith(("Conv_1", "out_relu")):
        return True
    if not layer_name.startswith("block_"):
        return False
    number = layer_name.split("_")[1]
    return number.isdigit() and int(number) > LAST_BLOCK - blocks


@dataclass(frozen=True)
class Progress:
    """Where training is, for a progress bar; ``val_accuracy`` is set at the end of an epoch."""

    stage: str
    epoch: int  # 1-based, counted over all stages
    epochs: int
    step: int
    steps: int
    loss: float
    accuracy: float
    epoch_seconds: float
    eta_epoch_s: float
    eta_run_s: float
    val_accuracy: float | None = None
    val_loss: float | None = None
    best: bool = False
    learning_rate: float = 0.0
    waiting_for: str = ""  # what the stopping rule waits for (set at the end of an epoch)
    metric: str = "acc"  # what val_accuracy measures (detectors: centroid "F1")


ProgressFn = Callable[[Progress], None]


def eta_seconds(step_s: float, steps_left: int, steps_per_epoch: int, epochs_left: int,
                val_s: float) -> tuple[float, float]:
    """(seconds to the end of this epoch, seconds to the end of the planned run)."""
    epoch = steps_left * step_s + val_s
    return epoch, epoch + epochs_left * (steps_per_epoch * step_s + val_s)


@dataclass
class EpochRecord:
    epoch: int
    stage: str
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "stage": self.stage, "loss": round(self.loss, 5),
                "accuracy": round(self.accuracy, 5), "val_loss": round(self.val_loss, 5),
                "val_accuracy": round(self.val_accuracy, 5), "seconds": round(self.seconds, 2),
                "partial": self.partial}


@dataclass(frozen=True)
class TrainResult:
    """The trained model (best weights restored) and what happened."""

    model: Any
    history: tuple[EpochRecord, ...]
    best_epoch: int
    best_val_accuracy: float
    interrupted: bool
    stopped_early: bool
    skipped: tuple[str, ...]
    metadata: dict[str, Any]

    @classmethod
    def of(cls, run: Any, model: Any, skipped: tuple[str, ...],
           metadata: dict[str, Any]) -> TrainResult:
        """The result of ``run`` (``history``, ``kept``: :class:`BestEpoch`, ``stop``,
        ``stopped_early``) once its best weights are back in ``model``."""
        return cls(model, tuple(run.history), run.kept.epoch, run.kept.score[0],
                   run.stop.is_set(), run.stopped_early, skipped, metadata)


class BestEpoch:
    """The best epoch so far by its score, ``(val measure, -val loss)``, and its weights.

    A partial epoch (stopped by Ctrl-C) counts only while no epoch was completed: which batch
    the stop lands in is chance, and the kept model should not depend on it.
    """

    def __init__(self) -> None:
        self.score: tuple[float, float] = (-1.0, 0.0)
        self.epoch = 0
        self.weights: list[np.ndarray] | None = None

    def offer(self, epoch: int, score: tuple[float, float], partial: bool, model: Any) -> bool:
        """Keeps ``model``'s weights when this epoch is the best so far; whether it was."""
        if (partial and self.weights is not None) or score <= self.score:
            return False
        self.score, self.epoch = score, epoch
        self.weights = [w.copy() for w in model.get_weights()]
        return True

    def restore(self, model: Any) -> None:
        """Puts the kept weights back into ``model``.

        Raises:
            KeyboardInterrupt: the run was stopped before its first batch (nothing to keep).
        """
        if self.weights is None:
            raise KeyboardInterrupt
        model.set_weights(self.weights)


def epoch_order(rng: np.random.Generator, count: int, length: int) -> np.ndarray:
    """A shuffled order of ``count`` samples, filled up to ``length`` (whole batches) from a
    second shuffle: every batch has the same shape, so the training step is traced once."""
    parts = [rng.permutation(count)]
    while sum(len(p) for p in parts) < length:
        parts.append(rng.permutation(count))
    return np.concatenate(parts)[:length]


def predict(model: Any, pixels: np.ndarray, batch: int = PREDICT_BATCH) -> np.ndarray:
    """Class probabilities of a Keras model for uint8 pixels (N, H, W, 3), in batches."""
    out = [np.asarray(model(pixels[i:i + batch].astype(np.float32), training=False))
           for i in range(0, len(pixels), batch)]
    return np.concatenate(out) if out else np.empty((0, 0), np.float32)


def measure(model: Any, images: LoadedImages) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` on ``images``."""
    probs = predict(model, images.pixels)
    picked = probs[np.arange(len(images.labels)), images.labels]
    loss = float(-np.mean(np.log(np.clip(picked, 1e-7, 1.0))))
    return loss, float(np.mean(np.argmax(probs, axis=1) == images.labels))


class _Run:
    """State of one training run: the model, the best weights so far and the history."""

    def __init__(self, tf: Any, model: Any, settings: TrainSettings, train: LoadedImages,
                 val: LoadedImages, weights: np.ndarray, progress: ProgressFn | None,
                 stop: threading.Event, plan: RunPlan,
                 at_size: Callable[[int, Any], tuple[Any, LoadedImages, LoadedImages]] | None
                 = None) -> None:
        self.tf, self.model, self.settings, self.plan = tf, model, settings, plan
        self.at_size = at_size
        self.resolution = settings.resolution
        self.stopping = EarlyStopping(plan.rule)
        self.last_state: StopState | None = None
        self.rate = 0.0
        self._stage_step = 0
        self._stage_steps = 1
        self._stage: Stage | None = None
        self.train, self.val, self.weights = train, val, weights
        self.progress, self.stop = progress, stop
        self.rng = np.random.default_rng(settings.seed)
        self.steps = max(1, math.ceil(len(train.labels) / settings.batch_size))
        self.history: list[EpochRecord] = []
        self.kept = BestEpoch()
        self.step_s = 0.0
        self.val_s = 0.0
        self.stopped_early = False
        self._timed_steps = 0

    def run(self, stages: list[Stage]) -> None:
        planned = sum(s.epochs for s in stages)
        epoch = 0
        for number, stage in enumerate(stages):
            self._prepare(stage)
            last_stage = number == len(stages) - 1
            for _ in range(stage.epochs):
                epoch += 1
                self._epoch(stage, epoch, planned, last_stage)
                if self.stop.is_set():
                    return
                if last_stage and self.last_state is not None and self.last_state.stop:
                    log.info("%s; stopping", self.last_state.waiting_for)
                    self.stopped_early = True
                    return

    def resize(self, resolution: int) -> None:
        """Go on with the same weights at another input size; what was measured at the old
        size (the best epoch, the stopping rule's measures) does not compare and starts anew."""
        assert self.at_size is not None, "a stage at another input size needs at_size"
        self.model, self.train, self.val = self.at_size(resolution, self.model)
        self.resolution = resolution
        self.kept = BestEpoch()
        self.stopping.restart()
        log.info("input size %dx%d from here on", resolution, resolution)

    def _prepare(self, stage: Stage) -> None:
        resolution = stage.resolution or self.settings.resolution
        if resolution != self.resolution:
            self.resize(resolution)
        backbone = self.model.get_layer(BACKBONE)
        for layer in backbone.layers:
            frozen_bn = self.settings.pretrained and "BatchNormalization" in type(layer).__name__
            layer.trainable = is_trainable(layer.name, stage.trainable_blocks) and not frozen_bn
        keras = self.tf.keras
        self._stage, self._stage_step = stage, 0
        self._stage_steps = max(1, stage.epochs * self.steps)
        optimizer = (keras.optimizers.AdamW(stage.learning_rate,
                                            weight_decay=self.plan.weight_decay)
                     if not self.settings.pretrained and self.plan.weight_decay > 0
                     else keras.optimizers.Adam(stage.learning_rate))
        classes = int(self.model.output_shape[-1])
        self.model.compile(optimizer=optimizer, jit_compile=False, metrics=["accuracy"],
                           loss=_smoothed_loss(self.tf, classes, self.plan.label_smoothing))
        log.info("stage %s: %d epochs, learning rate %g, %d trainable weights", stage.name,
                 stage.epochs, stage.learning_rate, len(self.model.trainable_weights))

    def _set_learning_rate(self) -> None:
        assert self._stage is not None
        warmup = min(self.steps * 2, self._stage_steps // 10)
        self.rate = learning_rate(self._stage_step, self._stage_steps,
                                  self._stage.learning_rate, warmup)
        self.model.optimizer.learning_rate.assign(self.rate)
        self._stage_step += 1

    def _epoch(self, stage: Stage, epoch: int, planned: int, last_stage: bool) -> bool:
        start = time.perf_counter()
        order = epoch_order(self.rng, len(self.train.labels), self.steps * self.settings.batch_size)
        losses: list[float] = []
        hits = 0.0
        for step in range(self.steps):
            if self.stop.is_set():
                break
            index = order[step * self.settings.batch_size:(step + 1) * self.settings.batch_size]
            self._set_learning_rate()
            logs = self._train_batch(index)
            losses.append(logs["loss"])
            hits += logs["accuracy"] * len(index)
            self._report(stage, epoch, planned, step + 1, losses, hits, start)
        return self._end_epoch(stage, epoch, planned, losses, hits, start, last_stage)

    def _train_batch(self, index: np.ndarray) -> dict[str, float]:
        t0 = time.perf_counter()
        x = augment_batch(self.rng, self.train.pixels[index], self.settings.augmentation)
        y = self.train.labels[index]
        logs = self.model.train_on_batch(x, y, sample_weight=self.weights[y], return_dict=True)
        seconds = time.perf_counter() - t0
        self._timed_steps += 1
        # The first batch of a stage also traces the graph (seconds to a minute): it is not
        # what the rest is made of, so it does not enter the step time behind the ETA.
        if self._stage_step > 1:
            self.step_s = seconds if self.step_s == 0 else 0.9 * self.step_s + 0.1 * seconds
        return {k: float(v) for k, v in logs.items()}

    def _report(self, stage: Stage, epoch: int, planned: int, step: int, losses: list[float],
                hits: float, start: float) -> None:
        if self.progress is None:
            return
        seen = step * self.settings.batch_size
        eta_epoch, eta_run = eta_seconds(self.step_s, self.steps - step, self.steps,
                                         planned - epoch, self.val_s)
        if self.step_s == 0:  # only the tracing step so far: no honest ETA yet
            eta_epoch = eta_run = math.nan
        self.progress(Progress(stage.name, epoch, planned, step, self.steps,
                               float(np.mean(losses)), hits / seen,
                               time.perf_counter() - start, eta_epoch, eta_run,
                               learning_rate=self.rate))

    def _end_epoch(self, stage: Stage, epoch: int, planned: int, losses: list[float],
                   hits: float, start: float, last_stage: bool) -> bool:
        if not losses:  # stopped before the first batch of this epoch
            return False
        t0 = time.perf_counter()
        val_loss, val_accuracy = measure(self.model, self.val)
        self.val_s = time.perf_counter() - t0
        seen = len(losses) * self.settings.batch_size
        record = EpochRecord(epoch, stage.name, float(np.mean(losses)), hits / seen, val_loss,
                             val_accuracy, time.perf_counter() - start,
                             partial=len(losses) < self.steps)
        self.history.append(record)
        improved = self.kept.offer(epoch, (val_accuracy, -val_loss), record.partial,
                                   self.model)
        waiting = ""
        if not record.partial:
            self.last_state = self.stopping.update(val_accuracy, val_loss)
            waiting = (self.last_state.waiting_for if last_stage
                       else f"{stage.name} stage: {stage.epochs} epochs")
        if self.progress is not None:
            self.progress(Progress(stage.name, epoch, planned, len(losses), self.steps,
                                   record.loss, record.accuracy, record.seconds, 0.0,
                                   eta_seconds(self.step_s, 0, self.steps, planned - epoch,
                                               self.val_s)[1], val_accuracy, val_loss,
                                   improved, self.rate, waiting))
        return improved


def _smoothed_loss(tf: Any, classes: int, smoothing: float) -> Any:
    """Cross-entropy on integer labels with label smoothing (Keras' sparse loss has none)."""
    if smoothing <= 0:
        return "sparse_categorical_crossentropy"
    def loss(y_true: Any, y_pred: Any) -> Any:  # per sample: Keras applies sample weights
        labels = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), classes)
        return tf.keras.losses.categorical_crossentropy(labels, y_pred,
                                                        label_smoothing=smoothing)

    return loss


def _seed_everything(tf: Any, seed: int) -> None:
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _load_split(folder: ImageFolder, split: str, size: tuple[int, int]) -> LoadedImages:
    images = load_images(folder.split(split), size)
    if split == "train":
        require_every_class(images, folder.classes, split)
    elif len(images.labels) == 0:
        raise TrainingError(f"{folder.root}: no decodable image fell in the {split} split "
                            f"({len(folder.samples)} images in all); add images or raise "
                            f"--{split}")
    return images


def train_model(folder: ImageFolder, settings: TrainSettings, *,
                progress: ProgressFn | None = None, stop: threading.Event | None = None
                ) -> TrainResult:
    """Train a classifier on ``folder``'s training split, choosing by validation accuracy.

    Raises:
        TrainingError: a class has no decodable training image, the validation split is
            empty, or the model cannot be built (weights missing or not matching).
        KeyboardInterrupt: ``stop`` was set before the first batch was trained.
    """
    size = (settings.resolution, settings.resolution)
    train = _load_split(folder, "train", size)
    val = _load_split(folder, "val", size)
    tf = import_tensorflow()
    _seed_everything(tf, settings.seed)
    model = build_mobilenetv2(settings.alpha, settings.resolution, len(folder.classes),
                              weights=settings.weights, dropout=settings.dropout)
    weights = (class_weights(train.labels, len(folder.classes)) if settings.class_weights
               else np.ones(len(folder.classes)))
    plan = run_plan(settings, len(train.labels), len(folder.classes))

    def at_size(resolution: int, current: Any) -> tuple[Any, LoadedImages, LoadedImages]:
        """``current``'s weights in a model of another input size, and the images at it."""
        if resolution == settings.resolution:
            other, images = model, (train, val)
        else:
            other = build_mobilenetv2(settings.alpha, resolution, len(folder.classes),
                                      weights=None, dropout=settings.dropout)
            images = (_load_split(folder, "train", (resolution, resolution)),
                      _load_split(folder, "val", (resolution, resolution)))
        other.set_weights(current.get_weights())
        set_batch_norm_momentum(other.get_layer(BACKBONE), run.steps)
        return other, *images

    run = _Run(tf, model, settings, train, val, weights.astype(np.float32), progress,
               stop or threading.Event(), plan, at_size)
    if not settings.pretrained:
        prepare_from_scratch(model.get_layer(BACKBONE), run.steps)
    log.info("planned %d epochs; %s", plan.epochs, plan.rule)
    run.run(plan_stages(settings, plan.epochs, plan.head_epochs))
    if run.model is not model:  # stopped during a stage at another input size: its weights
        run.resize(settings.resolution)
        val_loss, val_accuracy = measure(model, val)
        run.kept.offer(len(run.history), (val_accuracy, -val_loss), False, model)
    run.kept.restore(model)
    # The held-out images are not trained on, but a broken one is listed now, not at evaluation.
    held_out = load_images(folder.split("test"), size).skipped
    skipped = train.skipped + val.skipped + held_out
    return TrainResult.of(run, model, skipped, _metadata(folder, settings, run, skipped, weights))


def _metadata(folder: ImageFolder, settings: TrainSettings, run: _Run,
              skipped: tuple[str, ...], weights: np.ndarray) -> dict[str, Any]:
    root = str(folder.root.resolve())
    return {
        "classes": list(folder.classes),
        "input_size": [settings.resolution, settings.resolution],
        "task": "classify",
        "architecture": {"family": "MobileNetV2", "alpha": settings.alpha,
                         "resolution": settings.resolution,
                         "weights": settings.weights or "none"},
        "data": {"root": root, "split": {"method": "sha256 of the path relative to root",
                                         "val": settings.fractions.val,
                                         "test": settings.fractions.test},
                 "counts": folder.counts(), "skipped": list(skipped)},
        "calibration": {"root": root, "split": "train"},
        "training": {
            **run_summary(run, settings.seed, settings.batch_size),
            "best_val_accuracy": round(run.kept.score[0], 5),
            "augmentation": settings.augmentation.to_dict(),
            "label_smoothing": run.plan.label_smoothing, "weight_decay": run.plan.weight_decay,
            "class_weights": dict(zip(folder.classes, np.round(weights, 4).tolist(),
                                      strict=True)),
            "history": [r.to_dict() for r in run.history]},
    }


def train_file(data: Path, output: Path, settings: TrainSettings, *,
               progress: ProgressFn | None = None, stop: threading.Event | None = None,
               extra: dict[str, Any] | None = None) -> TrainResult:
    """Scan ``data``, train, and save the best model with its training record to ``output``.

    ``extra`` is merged into the record (e.g. how ``--board`` chose the size).

    Raises:
        TrainingError, ModelError: bad data, settings or output path.
        KeyboardInterrupt: stopped before anything was trained (nothing is written).
    """
    check_output(output)
    folder = scan_folder(data, settings.fractions)
    return save_trained(train_model(folder, settings, progress=progress, stop=stop), output,
                        extra)


def save_trained(result: TrainResult, output: Path,
                 extra: dict[str, Any] | None = None) -> TrainResult:
    """Save ``result``'s model with its training record (``extra`` merged in) to ``output``."""
    metadata = {**result.metadata, **(extra or {})}
    save_keras(result.model, output, metadata)
    return replace(result, metadata=metadata)


def run_summary(run: Any, seed: int, batch_size: int) -> dict[str, Any]:
    """What every task's training record says of its run: seed, plan, stopping rule, and how
    the run ended (``run`` has ``plan``, ``history``, ``kept``, ``stop``,
    ``stopped_early``)."""
    return {"seed": seed, "epochs_planned": run.plan.epochs,
            "min_epochs": run.plan.rule.min_epochs, "patience": run.plan.rule.patience,
            "epochs_run": len(run.history), "best_epoch": run.kept.epoch,
            "interrupted": run.stop.is_set(), "stopped_early": run.stopped_early,
            "batch_size": batch_size}
