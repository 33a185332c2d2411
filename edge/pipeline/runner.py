"""The inference loop: newest frame in, label event out, over injected parts.

:func:`run_loop` is the whole loop and takes every part as an argument, so tests drive it with
stand-ins and bound it with ``max_frames``; :func:`run_pipeline` wires it to a capture thread
and a sink writer thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge.backoff import Backoff
from edge.camera.base import Frame, FrameSource
from edge.events import LabelEvent, Prediction, Scored
from edge.pipeline.capture import FrameGrabber
from edge.pipeline.sdnotify import SystemdNotifier
from edge.pipeline.smoothing import ScoreSmoother, select
from edge.pipeline.stats import RunStats, RunSummary
from edge.pipeline.writer import SinkWriter
from edge.runtime.postprocess import FrameResult
from edge.sinks.base import LabelSink

# A frame's candidate classes (a classifier: smoothed here), or the whole result of another kind.
ClassifyFn = Callable[[np.ndarray], Sequence[Scored] | FrameResult]
StatusFn = Callable[[RunSummary], None]
LabelledFn = Callable[[np.ndarray, LabelEvent], None]


@dataclass(frozen=True)
class LoopSettings:
    """How the loop labels frames and when it stops.

    Attributes:
        top_k: predictions per event (other kinds: headline labels).
        threshold: minimum (smoothed) score of a prediction (classifiers; the decoder applies
            it to the other kinds).
        smooth: frames in the smoothing window (1 = none).
        smooth_method: ``mean`` or ``median``.
        max_frames: stop after this many labelled frames.
        duration_s: stop after this many seconds.
        status_interval_s: seconds between status callbacks.
        poll_s: longest wait for a frame before checking the stop conditions again.
        run_id: the ``run`` of every event (see :func:`edge.events.new_run_id`); "" for none.
    """

    top_k: int = 1
    threshold: float = 0.0
    smooth: int = 1
    smooth_method: str = "mean"
    max_frames: int | None = None
    duration_s: float | None = None
    status_interval_s: float = 5.0
    poll_s: float = 0.1
    run_id: str = ""


def run_loop(grabber: FrameGrabber, classify: ClassifyFn, emit: Callable[[LabelEvent], None],
             settings: LoopSettings, *, stop: threading.Event, stats: RunStats | None = None,
             notifier: SystemdNotifier | None = None, on_status: StatusFn | None = None,
             on_label: LabelledFn | None = None) -> RunSummary:
    """Label frames until a limit is reached, the source ends or ``stop`` is set.

    A frame already taken is always finished and emitted, even when ``stop`` is set meanwhile.

    Args:
        grabber: running capture thread.
        classify: RGB frame -> candidate predictions (what the smoother combines).
        emit: receives every label event (e.g. :meth:`SinkWriter.submit`).
        settings: labelling and limits.
        stop: set by a signal handler (or a test) to end the run.
        stats: accumulates the run's numbers (a new one if None).
        notifier: told of every classified frame (systemd READY/WATCHDOG).
        on_status: called every ``status_interval_s`` with a snapshot.
        on_label: receives every frame (RGB) with its event, e.g. the preview; must not block.

    Returns:
        The final summary.
    """
    stats = stats or RunStats()
    smoother = ScoreSmoother(settings.smooth, settings.smooth_method)
    start = time.monotonic()
    deadline = start + settings.duration_s if settings.duration_s is not None else None
    next_status = start + settings.status_interval_s
    while not stop.is_set():
        if settings.max_frames is not None and stats.frames >= settings.max_frames:
            break
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        if on_status is not None and now >= next_status:
            on_status(stats.summary(grabber.counters, advance=True))
            next_status = now + settings.status_interval_s
        frame = grabber.get(timeout=settings.poll_s)
        if frame is None:
            if grabber.ended:
                break
            continue
        event = _event(classify(frame.rgb), smoother, settings, stats.frames, frame)
        emit(event)
        if on_label is not None:
            on_label(frame.rgb, event)
        stats.record(event)
        if notifier is not None:
            notifier.frame_classified()
    return stats.summary(grabber.counters)


def _event(found: Sequence[Scored] | FrameResult, smoother: ScoreSmoother,
           settings: LoopSettings, seq: int, frame: Frame) -> LabelEvent:
    """The label event of one frame: a classifier's candidates smoothed and selected, another
    kind's result carried as it is (no smoothing: boxes move)."""
    if isinstance(found, FrameResult):
        predictions = tuple(Prediction(p.index, p.label, p.score)
                            for p in found.predictions[:settings.top_k])
    else:
        predictions = select(smoother.update(found), settings.top_k, settings.threshold)
    latency_ms = (time.monotonic_ns() - frame.timestamp_ns) / 1e6
    event = LabelEvent(seq, frame.index, frame.timestamp_ns, latency_ms, time.time(),
                       predictions, frame.truth, frame.source, frame.file,
                       run=settings.run_id)
    if not isinstance(found, FrameResult):
        return event
    return replace(event, kind=found.kind, detections=found.detections,
                   keypoints=found.keypoints, segments=found.segments,
                   frame_size=found.frame_size, mask=found.mask)


def run_pipeline(source: FrameSource, classify: ClassifyFn, sinks: Sequence[LabelSink],
                 settings: LoopSettings, *, stop: threading.Event | None = None,
                 notifier: SystemdNotifier | None = None, on_status: StatusFn | None = None,
                 on_label: LabelledFn | None = None, stall_timeout_s: float = 5.0,
                 backoff: Backoff | None = None) -> RunSummary:
    """Run :func:`run_loop` with capture and sink writing in threads of their own.

    ``source`` must be open; the sinks are flushed and closed before this returns (also on
    errors).

    Raises:
        SinkError: a sink failed.
        CameraError: a finite source kept failing.
    """
    stop = stop or threading.Event()
    with SinkWriter(sinks) as writer, FrameGrabber(source, stall_timeout_s=stall_timeout_s,
                                                   backoff=backoff) as grabber:
        return run_loop(grabber, classify, writer.submit, settings, stop=stop,
                        notifier=notifier, on_status=on_status, on_label=on_label)
