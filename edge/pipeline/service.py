"""``edge-run`` as a library call: board profile, classifier, camera and sinks, built once.

Everything expensive is opened exactly once, in data-flow order, inside one ``ExitStack``, so
whatever fails, what was opened is closed (sinks flushed, file fsync'ed, camera released).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edge.boards import get_board
from edge.camera import open_source
from edge.errors import ModelError
from edge.pipeline.capture import Backoff
from edge.pipeline.runner import LoopSettings, StatusFn, run_pipeline
from edge.pipeline.sdnotify import SystemdNotifier
from edge.pipeline.signals import stop_on_signals
from edge.pipeline.sinks import JsonLinesSink, LabelSink, OnChangeSink, SerialSink
from edge.pipeline.stats import RunSummary

# With smoothing, the classifier is asked for this many candidates so the moving window sees
# the classes that are close behind the top one.
SMOOTH_CANDIDATES = 10


@dataclass(frozen=True)
class RunOptions:
    """Everything ``edge-run`` can be told; see ``edge-run --help``.

    Attributes:
        threads: interpreter threads; None takes the board profile's (0 = every core).
        serial: port or URL; ``""`` takes the board profile's default port.
        baud: serial speed; None takes the board profile's.
        stdout: also print JSON lines when ``output`` or ``serial`` is given.
        status_interval_s: seconds between status callbacks.
        stall_timeout_s: a camera read hanging this long is reopened.
    """

    camera: str
    board: str = "host"
    boards_dirs: tuple[str, ...] = ()
    model: str | None = None
    labels: str | None = None
    threads: int | None = None
    backend: str | None = None
    resize: str = "squash"
    top_k: int = 1
    threshold: float = 0.0
    smooth: int = 1
    smooth_method: str = "mean"
    output: str | None = None
    serial: str | None = None
    serial_format: str = "json"
    baud: int | None = None
    on_change: bool = False
    stdout: bool = False
    max_frames: int | None = None
    duration_s: float | None = None
    loop: bool = False
    status_interval_s: float = 5.0
    stall_timeout_s: float = 5.0
    seed: int = 0


def model_and_labels(options: RunOptions) -> tuple[Path, str | None]:
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


def open_sinks(options: RunOptions, stack: ExitStack, stdout: TextIO, *,
               default_port: str = "", default_baud: int = 115200) -> list[LabelSink]:
    """Open the sinks ``options`` ask for (stdout when no other), registered on ``stack``."""
    sinks: list[LabelSink] = []
    if options.output is not None:
        sinks.append(JsonLinesSink(path=options.output))
    if options.serial is not None:
        port = options.serial or default_port
        if not port:
            from edge.errors import SinkError

            raise SinkError("--serial needs a port: this board profile has no serial_port")
        sinks.append(SerialSink(port, baud=options.baud or default_baud,
                                fmt=options.serial_format))
    if not sinks or options.stdout:
        sinks.insert(0, JsonLinesSink(stdout))
    if options.on_change:
        sinks = [OnChangeSink(s) for s in sinks]
    for sink in sinks:
        stack.callback(sink.close)  # the writer closes them first; closing twice is harmless
    return sinks


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
        on_status: receives a snapshot every ``options.status_interval_s`` seconds.
        stop: set to end the run early (signals set it too).
        notifier: systemd notifier (one reading the environment by default).

    Raises:
        EdgeError: a part could not be opened or failed for good.
    """
    from edge.runtime import Classifier

    board = get_board(options.board, options.boards_dirs, kind="linux")
    runtime = board.runtime
    assert runtime is not None
    model, labels = model_and_labels(options)
    threads = runtime.threads if options.threads is None else options.threads
    stop = stop or threading.Event()
    notifier = notifier or SystemdNotifier()
    with ExitStack() as stack:
        stack.enter_context(stop_on_signals(stop))
        stack.callback(notifier.close)
        clf = stack.enter_context(Classifier.open(
            str(model), threads=threads or None, backend=options.backend, labels=labels,
            resize=options.resize,
            delegate="edgetpu" if runtime.delegate == "edgetpu" else None,
            device=runtime.device or None))
        source = stack.enter_context(open_source(
            options.camera, board=board, input_size=clf.input_size, resize=options.resize,
            loop=options.loop, seed=options.seed, labels=clf.labels))
        sinks = open_sinks(options, stack, stdout, default_port=runtime.serial_port,
                           default_baud=runtime.baud)
        if on_start is not None:
            on_start({"board": board.name, "camera": source.name, "model": model.name,
                      "backend": clf.backend_name, "threads": clf.threads,
                      "delegate": clf.delegate_name, "input_size": list(clf.input_size)})
        candidates = options.top_k if options.smooth == 1 else max(options.top_k,
                                                                   SMOOTH_CANDIDATES)
        floor = options.threshold if options.smooth == 1 else 0.0

        def classify(rgb: Any) -> Sequence[Any]:
            return clf.classify(rgb, top_k=candidates, threshold=floor)

        def status(summary: RunSummary) -> None:
            notifier.status(summary.status_line())
            if on_status is not None:
                on_status(summary)

        settings = LoopSettings(top_k=options.top_k, threshold=options.threshold,
                                smooth=options.smooth, smooth_method=options.smooth_method,
                                max_frames=options.max_frames, duration_s=options.duration_s,
                                status_interval_s=options.status_interval_s)
        try:
            return run_pipeline(source, classify, sinks, settings, stop=stop, notifier=notifier,
                                on_status=status, stall_timeout_s=options.stall_timeout_s,
                                backoff=Backoff())
        finally:
            notifier.stopping()
