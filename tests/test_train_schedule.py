"""The stopping rule, the learning-rate schedule and the run plan, on plain numbers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edge.modelbuild.schedule import (
    EarlyStopping,
    StoppingRule,
    learning_rate,
    planned_epochs,
)


def _stop_epoch(rule: StoppingRule, accuracies: list[float], losses: list[float] | None = None
                ) -> int | None:
    stopping = EarlyStopping(rule)
    for epoch, acc in enumerate(accuracies, 1):
        loss = losses[epoch - 1] if losses else 1.0
        if stopping.update(acc, loss).stop:
            return epoch
    return None


def test_the_issue_run_is_not_stopped_while_it_improves() -> None:
    # The run of the issue: a 44-image validation split, accuracy noisy around a slow rise;
    # patience 5 on raw accuracy stopped it at epoch 22 at 50 %.
    rng = np.random.default_rng(0)
    trend = np.minimum(0.33 + np.arange(80) * 0.012, 0.95)
    noisy = list(np.clip(trend + rng.normal(0, 0.07, 80), 0, 1))
    falling = list(1.1 - np.arange(80) * 0.01)
    raw = _stop_epoch(StoppingRule(0, 5, smoothing=1.0), noisy)
    assert raw is not None and raw < 40  # the old rule: stopped at a noisy dip
    assert _stop_epoch(StoppingRule(26, 8), noisy, falling) is None


def test_a_plateau_stops_after_patience_but_not_before_min_epochs() -> None:
    flat = [0.5] * 30
    assert _stop_epoch(StoppingRule(0, 4), flat) == 5  # epoch 1 is progress, then 4 without
    assert _stop_epoch(StoppingRule(12, 4), flat) == 12
    assert _stop_epoch(StoppingRule(0, 4), [0.4, 0.5, 0.6, 0.7] + [0.7] * 20) == 16


def test_a_falling_validation_loss_counts_as_progress() -> None:
    acc = [0.97] * 20  # saturated on a small split
    losses = [0.5 * 0.9 ** i for i in range(20)]
    assert _stop_epoch(StoppingRule(0, 3), acc, losses) is None
    assert _stop_epoch(StoppingRule(0, 3), acc, [0.5] * 20) == 4


def test_smoothing_halves_one_lucky_epoch() -> None:
    stopping = EarlyStopping(StoppingRule(0, 3, smoothing=0.5))
    states = [stopping.update(a, 1.0) for a in (0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.5)]
    assert states[2].smoothed_accuracy == pytest.approx(0.7)
    # The bar to beat after a lucky 90 % on a small split is 70.5 %, not 90.5 %.
    assert "> 70.5%" in states[3].waiting_for
    assert [s.stop for s in states] == [False] * 5 + [True, True]


def test_waiting_for_says_what_the_rule_waits_for() -> None:
    stopping = EarlyStopping(StoppingRule(10, 4))
    state = stopping.update(0.5, 1.0)
    assert state.waiting_for == "runs at least to epoch 10"
    for _ in range(10):
        state = stopping.update(0.4, 1.0)
    assert state.waiting_for.startswith("stopping: no progress for")
    stopping = EarlyStopping(StoppingRule(0, 4))
    stopping.update(0.5, 1.0)
    text = stopping.update(0.5, 1.0).waiting_for
    assert text == "stops in 3 epochs unless smoothed val acc > 50.5% or val loss < 0.980"


def test_bad_rules_are_refused() -> None:
    for bad in ((0, 0, 0.5), (-1, 3, 0.5), (0, 3, 0.0), (0, 3, 1.5)):
        with pytest.raises(ValueError):
            StoppingRule(*bad)


def test_learning_rate_warms_up_then_decays_by_a_cosine() -> None:
    rates = [learning_rate(s, 100, 1e-3, 10) for s in range(120)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in itertools.pairwise(rates[:10]))
    assert all(a >= b for a, b in itertools.pairwise(rates[9:101]))
    assert rates[55] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5), rel=1e-6)
    assert rates[100] == pytest.approx(1e-5) and rates[119] == pytest.approx(1e-5)
    assert learning_rate(0, 0, 1e-3, 0) == 1e-3 and math.isfinite(learning_rate(5, 1, 1, 0))


def test_small_data_gets_more_epochs() -> None:
    assert planned_epochs(363, 32, min_steps=1500, low=30, high=200) == 125
    assert planned_epochs(120, 32, min_steps=1500, low=30, high=200) == 200
    assert planned_epochs(48_000, 32, min_steps=1500, low=30, high=200) == 30


def test_run_plan_from_scratch_and_pretrained() -> None:
    from edge.modelbuild.train import TrainSettings, run_plan

    plan = run_plan(TrainSettings(), 363)
    assert (plan.epochs, plan.rule.min_epochs, plan.rule.patience) == (200, 66, 20)
    plan = run_plan(TrainSettings(epochs=12, patience=3, min_epochs=20), 363)
    assert (plan.epochs, plan.rule.min_epochs, plan.rule.patience) == (12, 12, 3)
    plan = run_plan(TrainSettings(weights="imagenet"), 363)
    assert (plan.epochs, plan.rule.min_epochs, plan.rule.patience) == (30, 13, 5)
    assert plan.head_epochs == 10  # 120 steps of 12


class _Weights:
    """A model as BestEpoch sees it: weights to read and to put back."""

    def __init__(self) -> None:
        self.weights = [np.zeros(2)]

    def get_weights(self) -> list[np.ndarray]:
        return self.weights

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.weights = [w.copy() for w in weights]


def test_the_best_whole_epoch_is_kept_and_a_partial_one_only_when_nothing_else_is() -> None:
    from edge.modelbuild.train import BestEpoch

    model, kept = _Weights(), BestEpoch()
    with pytest.raises(KeyboardInterrupt):  # stopped before the first batch: nothing to keep
        kept.restore(model)
    model.weights = [np.full(2, 1.0)]
    assert kept.offer(1, (0.5, -1.0), partial=True, model=model)  # nothing else yet
    model.weights = [np.full(2, 2.0)]
    assert kept.offer(2, (0.6, -0.9), partial=False, model=model)
    model.weights = [np.full(2, 3.0)]
    assert not kept.offer(3, (0.9, -0.1), partial=True, model=model)  # Ctrl-C mid-epoch
    assert not kept.offer(4, (0.6, -0.9), partial=False, model=model)  # a tie is no progress
    model.weights[0][:] = 4.0  # the model trains on in place; the kept copy must not follow
    assert kept.offer(5, (0.6, -0.5), partial=False, model=model)  # same accuracy, lower loss
    model.weights[0][:] = 5.0
    kept.restore(model)
    assert (kept.epoch, kept.score) == (5, (0.6, -0.5)) and model.weights[0].tolist() == [4, 4]


def test_a_result_nearer_chance_than_perfect_has_learned_little() -> None:
    from edge.modelbuild.train import learned_little

    # three classes: chance 33.3 %, the line at 66.7 %; two: 75 %; ten: 55 %
    assert learned_little(0.455, 3) and learned_little(0.66, 3)
    assert not learned_little(0.67, 3) and not learned_little(0.9, 3)
    assert learned_little(0.74, 2) and not learned_little(0.76, 2)
    assert learned_little(0.54, 10) and not learned_little(0.56, 10)
    assert not learned_little(0.0, 1)  # one class: nothing to learn, nothing to say


def test_a_restarted_stopping_rule_forgets_its_measures_not_its_epochs() -> None:
    rule = StoppingRule(min_epochs=4, patience=2)
    stopping = EarlyStopping(rule)
    for acc in (0.5, 0.9, 0.9):
        stopping.update(acc, 0.5)
    stopping.restart()  # the input size changed: a lower accuracy is no step back
    state = stopping.update(0.6, 0.8)
    assert state.epoch == 4 and state.since_progress == 0 and not state.stop
    assert stopping.best_accuracy == pytest.approx(0.6)
