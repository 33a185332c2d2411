"""``edge-run`` as a library call: board profile, classifier, camera and sinks, built once.

Everything expensive is opened exactly once, in data-flow order, inside one ``ExitStack``, so
whatever fails, what was opened is closed (sinks flushed, file fsync'ed, camera released).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from edge.boards import get_board
from edge.camera import open_source, source_kind
from edge.errors import ModelError
from edge.events import CLASSIFY, new_run_id
from edge.pipeline.recorder import FrameRecorder, RecordOptions
from edge.pipeline.runner import LoopSettings, StatusFn, run_pipeline
from edge.pipeline.sdnotify import SystemdNotifier
from edge.pipeline.signals import stop_on_signals
from edge.pipeline.stats import RunSummary
from edge.preview import PreviewOptions
from edge.runtime.policy import RuntimeOptions, open_classifier
from edge.runtime.postprocess import DecodeOptions, FrameResult, parse_classes
from edge.sinks import LabelSink, SinkOptions, open_sinks

# With smoothing, the classifier is asked for this many candidates so the moving window sees
# the classes that are close behind the top one.
SMOOTH_CANDIDATES = 10
# At most one STATUS= to systemd per this many seconds: it shows only the latest, and its
# notify socket's queue is short (a full one would block the inference loop).
SYSTEMD_STATUS_S = 1.0


@dataclass(frozen=True)
class SourceOptions:
    """Where frames come from.

    Attributes:
        camera: the ``--camera`` value.
        loop: restart a video file or folder at its end.
        seed: demo scene seed.
        stall_timeout_s: a camera read hanging this long is reopened.
        max_image_pixels: images of a folder claiming more pixels are skipped; None takes the
            board profile's limit.
        realtime: play a video file at its own pace (by its timestamps).
    """

    camera: str = "0"
    loop: bool = False
    seed: int = 0
    stall_timeout_s: float = 5.0
    max_image_pixels: int | None = None
    realtime: bool = False


@dataclass(frozen=True)
class ModelOptions:
    """Which model labels the frames, and how frames are fitted to it.

    Attributes:
        model: a .tflite model; None runs the bundled demo model.
        labels: labels file; None takes the model's own (or the demo labels).
        resize: ``squash``, ``crop``, ``letterbox``, or None for the model's own default.
        kind: ``--kind``: None recognises it from the model.
        iou: detectors' NMS overlap limit (None: the layout's default).
        max_detections: most boxes per frame.
        classes: keep only these labels (detectors, segmenters); None keeps all.
        threshold: least score of a box or keypoint (None: the layout's default); classifiers
            use the loop's threshold.
    """

    model: str | None = None
    labels: str | None = None
    resize: str | None = None
    kind: str | None = None
    iou: float | None = None
    max_detections: int = 100
    classes: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class RunOptions:
    """Everything ``edge-run`` can be told, composed from one part per concern.

    A new sink or output is a new field of one part, not a new argument in three places.

    Attributes:
        source: the camera.
        board: board profile name; its defaults fill what ``runtime`` and ``sinks`` leave open.
        boards_dirs: extra folders of board profiles.
        model: the classifier.
        runtime: threads, backend, delegate, device as given (see :mod:`edge.runtime.policy`).
        loop: labelling and limits.
        sinks: where labels go.
        preview: the live preview's address, when one is wanted.
        record: where frames are saved as training images (``--record``), if anywhere.
    """

    source: SourceOptions = field(default_factory=SourceOptions)
    board: str = "host"
    boards_dirs: tuple[str, ...] = ()
    model: ModelOptions = field(default_factory=ModelOptions)
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    loop: LoopSettings = field(default_factory=LoopSettings)
    sinks: SinkOptions = field(default_factory=SinkOptions)
    preview: PreviewOptions | None = None
    record: RecordOptions | None = None


def model_and_labels(options: ModelOptions) -> tuple[Path, str | None]:
    """The model to run and its labels: the bundled demo model when no model is given.

    Raises:
        ModelError: the demo model is not in the package.
    """
    if options.model is not None:
        return Path(options.model), options.labels
    from edge import demo

    path = demo.model_path()
    if not path.is_file():
        raise ModelError(f"the bundled demo model {path} is missing; reinstall edge or pass "
                         "--model")
    return path, options.labels or str(demo.labels_path())


def run_service(options: RunOptions, *, stdout: TextIO,
                on_start: Callable[[dict[str, Any]], None] | None = None,
                on_status: StatusFn | None = None, stop: threading.Event | None = None,
                notifier: SystemdNotifier | None = None) -> RunSummary:
    """Open board, classifier, camera and sinks, label until done, close everything.

    SIGINT and SIGTERM (when called from the main thread) end the run after the frame in hand.

    Args:
        options: what to run.
        stdout: stream of the default JSON-lines sink.
        on_start: receives a description of what was opened, once, before the first frame.
        on_status: receives a snapshot every ``options.loop.status_interval_s`` s.
        stop: set to end the run early (signals set it too).
        notifier: systemd notifier (one reading the environment by default).

    Raises:
        EdgeError: a part could not be opened or failed for good.
    """
    board = get_board(options.board, options.boards_dirs, kind="linux")
    runtime = board.runtime
    assert runtime is not None
    # A wrong --camera fails before the interpreter logs anything.
    source_kind(options.source.camera, runtime.camera)
    model, labels = model_and_labels(options.model)
    stop = stop or threading.Event()
    notifier = notifier or SystemdNotifier()
    with ExitStack() as stack:
        stack.enter_context(stop_on_signals(stop))
        stack.callback(notifier.close)
        # Sinks first: a wrong broker password or serial port fails before the model loads.
        sinks = open_sinks(options.sinks, stack, stdout, default_port=runtime.serial_port,
                           default_baud=runtime.baud)
        clf = stack.enter_context(open_classifier(
            model, options.runtime, board, labels=labels, resize=options.model.resize,
            kind=options.model.kind))
        source = stack.enter_context(open_source(
            options.source.camera, board=board, input_size=clf.input_size,
            resize="crop" if clf.resize == "crop" else "squash",  # what a camera scales to
            loop=options.source.loop, seed=options.source.seed,
            max_image_pixels=options.source.max_image_pixels, labels=clf.labels,
            realtime=options.source.realtime))
        preview = _open_preview(options.preview, stack, f"{board.name}: {source.name}")
        recorder = (FrameRecorder(options.record, clf.input_size, clf.resize)
                    if options.record is not None else None)
        if on_start is not None:
            on_start({"board": board.name, "camera": source.name, "model": model.name,
                      "backend": clf.backend_name, "threads": clf.threads,
                      "delegate": clf.delegate_name, "input_size": list(clf.input_size),
                      "kind": clf.kind.kind,
                      "preview": preview.url if preview is not None else None,
                      "record": recorder.describe() if recorder is not None else None})
        settings = replace(options.loop, run_id=options.loop.run_id or new_run_id())
        candidates = (settings.top_k if settings.smooth == 1
                      else max(settings.top_k, SMOOTH_CANDIDATES))
        floor = settings.threshold if settings.smooth == 1 else 0.0

        decode = decode_options(options.model, settings.top_k)
        classifier = clf.kind.kind == CLASSIFY

        def classify(rgb: Any) -> Sequence[Any] | FrameResult:
            if recorder is not None:
                recorder(rgb)
            if classifier:
                return clf.classify(rgb, top_k=candidates, threshold=floor)
            return clf.label(rgb, options=decode)

        last_notified = [float("-inf")]

        def counted(summary: RunSummary) -> RunSummary:
            summary = with_sink_counters(summary, sinks)
            if recorder is None:
                return summary
            return replace(summary, sinks={**summary.sinks, "record": recorder.counters()})

        def status(summary: RunSummary) -> None:
            summary = counted(summary)
            numbers = summary.as_dict()
            for sink in sinks:
                sink.status(numbers)
            if preview is not None:
                preview.hub.status(numbers)
            now = time.monotonic()
            if now - last_notified[0] >= SYSTEMD_STATUS_S:  # systemd shows only the latest
                last_notified[0] = now
                notifier.status(summary.status_line())
            if on_status is not None:
                on_status(summary)

        try:
            summary = run_pipeline(source, classify, sinks, settings, stop=stop,
                                   notifier=notifier, on_status=status,
                                   on_label=preview.hub.observe if preview is not None else None,
                                   stall_timeout_s=options.source.stall_timeout_s)
        finally:
            notifier.stopping()
        return counted(summary)  # after the sinks closed: final numbers


def decode_options(model: ModelOptions, top_k: int) -> DecodeOptions:
    """What a detector's, segmenter's or pose model's results are filtered by."""
    return DecodeOptions(top_k=top_k, threshold=model.threshold, iou=model.iou,
                         max_detections=model.max_detections,
                         classes=parse_classes(model.classes))


def with_sink_counters(summary: RunSummary, sinks: Sequence[LabelSink]) -> RunSummary:
    """``summary`` with the delivery numbers of the sinks that count any."""
    counts = {sink.name: sink.counters() for sink in sinks if sink.counters()}
    return replace(summary, sinks=counts) if counts else summary


def _open_preview(options: PreviewOptions | None, stack: ExitStack, title: str) -> Any:
    """The preview server (imported only when asked for), registered on ``stack``."""
    if options is None:
        return None
    from edge.preview.server import PreviewServer

    return stack.enter_context(PreviewServer(options, title=title))
