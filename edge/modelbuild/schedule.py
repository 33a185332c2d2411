"""When to stop training and how fast to learn: pure rules on plain numbers.

Shared by every task ``edge-model`` trains (classification now, detection later): the trainer
feeds each epoch's validation measure to :class:`StoppingRule` and takes the learning rate of
every step from :func:`learning_rate`.

Validation splits of small data sets are small (45 images for 150 per class at 10 %), so one
epoch's accuracy moves by several points by chance alone. The rule therefore

* never stops before ``min_epochs`` (from scratch a network learns nothing visible for a while),
* compares a smoothed accuracy (an exponential moving average) rather than single epochs,
* counts an epoch as progress when, since the last progress, the smoothed accuracy rose by
  half a point or the smoothed validation loss fell by 2 %: accuracy on 45 images saturates
  long before the model stops getting better, and a slow, steady rise adds up,
* stops after ``patience`` epochs without progress.

The best *raw* epoch is still the one whose weights are kept; smoothing only decides when to
stop waiting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ACCURACY_MARGIN = 0.005  # rise of the smoothed val accuracy that counts as progress
LOSS_MARGIN = 0.02  # relative fall of the smoothed val loss that counts as progress


@dataclass(frozen=True)
class StoppingRule:
    """How long to wait; see the module docstring.

    Attributes:
        min_epochs: epochs always run (unless interrupted or the plan is shorter).
        patience: epochs without progress of the smoothed measures before stopping.
        smoothing: weight of the newest epoch in the moving averages (1 = no smoothing).
    """

    min_epochs: int = 0
    patience: int = 5
    smoothing: float = 0.5

    def __post_init__(self) -> None:
        if self.patience < 1 or self.min_epochs < 0 or not 0 < self.smoothing <= 1:
            raise ValueError(f"bad stopping rule {self}")


@dataclass(frozen=True)
class StopState:
    """What the rule knows after an epoch; ``waiting_for`` says it in words."""

    epoch: int
    smoothed_accuracy: float
    smoothed_loss: float
    best_accuracy: float
    best_loss: float
    since_progress: int
    stop: bool
    rule: StoppingRule

    @property
    def waiting_for(self) -> str:
        """What would keep training going, for the progress line."""
        if self.stop:
            return (f"stopping: no progress for {self.since_progress} epochs")
        if self.epoch < self.rule.min_epochs:
            return f"runs at least to epoch {self.rule.min_epochs}"
        left = self.rule.patience - self.since_progress
        return (f"stops in {left} epoch{'s' if left != 1 else ''} unless smoothed val acc "
                f"> {self.best_accuracy + ACCURACY_MARGIN:.1%} or val loss < "
                f"{self.best_loss * (1 - LOSS_MARGIN):.3f}")


class EarlyStopping:
    """Feed :meth:`update` each epoch's validation accuracy and loss; it says when to stop."""

    def __init__(self, rule: StoppingRule) -> None:
        self.rule = rule
        self.epoch = 0
        self._acc: float | None = None
        self._loss: float | None = None
        self.best_accuracy = -math.inf
        self.best_loss = math.inf
        self.since_progress = 0

    def restart(self) -> None:
        """Forget the measures so far (the model's input size changed, so they do not compare),
        keeping the epoch count, which the least number of epochs counts in."""
        self._acc = self._loss = None
        self.best_accuracy, self.best_loss = -math.inf, math.inf
        self.since_progress = 0

    def update(self, val_accuracy: float, val_loss: float) -> StopState:
        self.epoch += 1
        w = self.rule.smoothing
        loss = val_loss if math.isfinite(val_loss) else 1e9
        self._acc = val_accuracy if self._acc is None else w * val_accuracy + (1 - w) * self._acc
        self._loss = loss if self._loss is None else w * loss + (1 - w) * self._loss
        # Measured against the values at the last progress, so a slow, steady rise adds up.
        progress = (self._acc > self.best_accuracy + ACCURACY_MARGIN
                    or self._loss < self.best_loss * (1 - LOSS_MARGIN))
        if progress:
            self.best_accuracy = max(self.best_accuracy, self._acc)
            self.best_loss = min(self.best_loss, self._loss)
        self.since_progress = 0 if progress else self.since_progress + 1
        stop = self.epoch >= self.rule.min_epochs and self.since_progress >= self.rule.patience
        return StopState(self.epoch, self._acc, self._loss, self.best_accuracy, self.best_loss,
                         self.since_progress, stop, self.rule)


def learning_rate(step: int, total: int, peak: float, warmup: int,
                  floor: float = 0.01) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``floor x peak``
    at ``total`` (and flat after it). ``step`` counts from 0."""
    if total <= 0:
        return peak
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def planned_epochs(train_images: int, batch_size: int, *, min_steps: int, low: int, high: int
                   ) -> int:
    """Epochs for at least ``min_steps`` training steps, within [``low``, ``high``]: a small
    data set needs more passes over it to get the same number of updates."""
    steps = max(1, math.ceil(train_images / batch_size))
    return max(low, min(high, math.ceil(min_steps / steps)))
