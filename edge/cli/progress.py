"""Progress on stderr: a redrawn bar on a terminal, whole lines otherwise (logs, pipes)."""

from __future__ import annotations

import math
import sys
from typing import TextIO

from edge.modelbuild.train import Progress


def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar(done: int, total: int, width: int = 24) -> str:
    filled = width * done // max(total, 1)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def training_line(p: Progress) -> str:
    """One line of training progress: in an epoch with ETAs, or the epoch's result with what
    the stopping rule waits for."""
    head = f"epoch {p.epoch}/{p.epochs} ({p.stage})"
    if p.val_accuracy is None:
        eta = ("ETA after the first step (tracing the graph)" if math.isnan(p.eta_run_s)
               else f"ETA epoch {clock(p.eta_epoch_s)}, run <= {clock(p.eta_run_s)}")
        acc = "" if math.isnan(p.accuracy) else f" acc {p.accuracy:.1%}"
        return (f"{head} {bar(p.step, p.steps)} {p.step}/{p.steps} loss {p.loss:.3f}{acc}  "
                f"{eta}")
    best = "  (best so far)" if p.best else ""
    rest = "" if math.isnan(p.eta_run_s) else f"; run <= {clock(p.eta_run_s)} more"
    waiting = f"; {p.waiting_for}" if p.waiting_for else ""
    acc = "" if math.isnan(p.accuracy) else f" acc {p.accuracy:.1%}"
    return (f"{head} done in {clock(p.epoch_seconds)}: loss {p.loss:.3f}{acc} "
            f"val {p.metric} {p.val_accuracy:.1%}{best}{waiting}{rest}")


class TrainingProgress:
    """Draws :class:`Progress` updates; on a terminal the bar is redrawn in place."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._width = 0

    def __call__(self, p: Progress) -> None:
        line = training_line(p)
        if p.val_accuracy is None and not self.tty:
            return  # in a log, only finished epochs
        if self.tty:
            pad = " " * max(0, self._width - len(line))
            end = "\n" if p.val_accuracy is not None else ""
            self.stream.write(f"\r{line}{pad}{end}")
            self._width = 0 if end else len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class CountBar:
    """``[####....] done/total what`` for counted work (calibration images): redrawn on a
    terminal; in a log, one line at each quarter."""

    def __init__(self, what: str, stream: TextIO | None = None) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._quarter = -1

    def __call__(self, done: int, total: int) -> None:
        line = f"{bar(done, total, 30)} {done}/{total} {self.what}"
        if self.tty:
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{line}{end}")
        else:
            quarter = 4 * done // max(total, 1)
            if quarter == self._quarter:
                return
            self._quarter = quarter
            self.stream.write(line + "\n")
        self.stream.flush()
