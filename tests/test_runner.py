"""The inference loop over injected parts: stand-in cameras that fail and stall, a trivial
classifier, and a sink that records. Synchronised with events and timeouts, never sleeps."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge.backoff import Backoff
from edge.camera.base import Frame, FrameSource
from edge.errors import CameraError
from edge.events import LabelEvent, Prediction
from edge.pipeline.capture import FrameGrabber
from edge.pipeline.runner import LoopSettings, run_loop, run_pipeline
from edge.pipeline.slot import LatestSlot
from edge.pipeline.smoothing import ScoreSmoother, select
from edge.pipeline.stats import RunSummary
from edge.sinks.base import LabelSink, OnChangeSink

FAST = Backoff(initial_s=0.001, max_s=0.01)


class CountingCamera(FrameSource):
    """A live camera whose frame n shows the value n % 256 in every pixel.

    ``fail_every``: every Nth read raises CameraError. ``stall_at``: that read blocks until
    :meth:`interrupt` (or 10 s) and then raises.
    """

    def __init__(self, *, fail_every: int = 0, stall_at: int | None = None,
                 live: bool = True, frames: int | None = None) -> None:
        super().__init__()
        self.name = "counting"
        self.live = live
        self.fail_every = fail_every
        self.stall_at = stall_at
        self.frames = frames
        self.reads = 0
        self.opens = 0
        self.is_open = False
        self.stalled = threading.Event()
        self._unstall = threading.Event()

    def open(self) -> None:
        self.opens += 1
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def interrupt(self) -> None:
        self._unstall.set()

    def read(self) -> Frame | None:
        assert self.is_open, "read from a closed camera"
        self.reads += 1
        if self.frames is not None and self._next_index >= self.frames:
            return None
        if self.fail_every and self.reads % self.fail_every == 0:
            raise CameraError("device gone")
        if self.reads == self.stall_at:
            self.stalled.set()
            self._unstall.wait(10)
            raise CameraError("interrupted")
        value = self._next_index % 256
        return self._frame(np.full((4, 4, 3), value, np.uint8), time.monotonic_ns())


def classify_by_value(rgb: np.ndarray) -> list[Prediction]:
    """Class = pixel value % 3."""
    return [Prediction(int(rgb[0, 0, 0]) % 3, f"class{int(rgb[0, 0, 0]) % 3}", 1.0)]


class RecordingSink(LabelSink):
    def __init__(self) -> None:
        self.events: list[LabelEvent] = []
        self.closed = False

    def write(self, event: LabelEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


def run(camera: CountingCamera, settings: LoopSettings, **kwargs: object) -> tuple:
    sink = RecordingSink()
    with camera:
        summary = run_pipeline(camera, classify_by_value, [sink], settings, backoff=FAST,
                               **kwargs)  # type: ignore[arg-type]
    return summary, sink


def test_every_frame_of_a_finite_source_is_labelled_in_order() -> None:
    summary, sink = run(CountingCamera(live=False, frames=50), LoopSettings())
    assert summary.frames == 50 and summary.dropped == 0
    assert [e.frame_index for e in sink.events] == list(range(50))
    assert all(e.top is not None and e.top.index == e.frame_index % 3 for e in sink.events)
    assert all(e.latency_ms >= 0 for e in sink.events)
    assert sink.closed


def test_camera_failing_every_nth_read_keeps_running_and_counts_reconnects() -> None:
    camera = CountingCamera(fail_every=7)
    summary, sink = run(camera, LoopSettings(max_frames=60))
    assert summary.frames == 60
    assert summary.reconnects >= 60 // 6 - 1
    # The summary is taken while capture still runs: one failure may await its reopen.
    assert summary.reconnects <= summary.camera_errors <= summary.reconnects + 1
    assert camera.opens >= 1 + summary.reconnects
    indices = [e.frame_index for e in sink.events]
    assert indices == sorted(indices)


def test_stalled_camera_is_reopened_by_the_watchdog() -> None:
    camera = CountingCamera(stall_at=5)
    summary, _ = run(camera, LoopSettings(max_frames=20), stall_timeout_s=0.2)
    assert camera.stalled.is_set()
    assert summary.frames == 20
    assert summary.stalls >= 1  # (a very busy machine may add a spurious one)
    assert summary.reconnects >= 1
    assert summary.camera_errors == 0  # the interrupted read is the stall, not another error


def test_stop_event_finishes_the_frame_in_hand() -> None:
    stop = threading.Event()
    seen: list[int] = []

    def classify_then_stop(rgb: np.ndarray) -> list[Prediction]:
        seen.append(int(rgb[0, 0, 0]))
        if len(seen) == 10:
            stop.set()
        return classify_by_value(rgb)

    camera = CountingCamera(live=False)
    sink = RecordingSink()
    with camera:
        summary = run_pipeline(camera, classify_then_stop, [sink], LoopSettings(), stop=stop)
    assert summary.frames == len(seen) == len(sink.events) == 10


def test_live_camera_faster_than_inference_drops_stale_frames() -> None:
    release = threading.Event()
    camera = CountingCamera()

    def slow_classify(rgb: np.ndarray) -> list[Prediction]:
        # Wait until the camera has produced at least 3 more frames than we took.
        deadline = time.monotonic() + 5
        while camera.reads < int(rgb[0, 0, 0]) + 3 and time.monotonic() < deadline:
            release.wait(0.001)
        return classify_by_value(rgb)

    sink = RecordingSink()
    with camera:
        summary = run_pipeline(camera, slow_classify, [sink], LoopSettings(max_frames=5))
    assert summary.dropped > 0
    indices = [e.frame_index for e in sink.events]
    assert indices == sorted(indices) and indices[-1] > 5  # newest frames, not a backlog


def test_duration_limit_ends_the_run() -> None:
    camera = CountingCamera()
    start = time.monotonic()
    summary, _ = run(camera, LoopSettings(duration_s=0.3))
    assert 0.3 <= time.monotonic() - start < 5
    assert summary.frames > 0


def test_status_callback_reports_counters() -> None:
    statuses: list[RunSummary] = []
    camera = CountingCamera(live=False, frames=30)
    with camera, FrameGrabber(camera) as grabber:
        calls = iter(range(1000))

        def classify(rgb: np.ndarray) -> list[Prediction]:
            next(calls)
            return classify_by_value(rgb)

        run_loop(grabber, classify, lambda e: None,
                 LoopSettings(status_interval_s=0.0), stop=threading.Event(),
                 on_status=statuses.append)
    assert statuses and statuses[-1].frames >= 29
    assert "fps" in statuses[-1].status_line()


def test_latest_slot_replaces_and_counts() -> None:
    slot: LatestSlot[int] = LatestSlot()
    slot.put(1, wait=False)
    slot.put(2, wait=False)
    assert slot.take(0.1) == 2 and slot.dropped == 1
    assert slot.take(0.01) is None
    slot.close()
    assert slot.put(3, wait=True) is False


def test_mean_smoothing_settles_a_flickering_label() -> None:
    smoother = ScoreSmoother(5, "mean")
    frames = [[Prediction(1, "a", 0.6), Prediction(2, "b", 0.4)]] * 4
    frames.append([Prediction(2, "b", 0.9), Prediction(1, "a", 0.1)])
    for candidates in frames:
        result = smoother.update(candidates)
    assert result[0].index == 1
    assert result[0].score == pytest.approx((0.6 * 4 + 0.1) / 5)


def test_median_smoothing_ignores_one_outlier() -> None:
    smoother = ScoreSmoother(3, "median")
    for candidates in ([Prediction(1, "a", 0.8)], [Prediction(2, "b", 0.99)],
                       [Prediction(1, "a", 0.7)]):
        result = smoother.update(candidates)
    assert (result[0].index, result[0].label) == (1, "a")
    assert result[0].score == pytest.approx(0.7)
    assert select(result, top_k=1, threshold=0.75) == ()


def test_on_change_passes_only_label_changes() -> None:
    inner = RecordingSink()
    sink = OnChangeSink(inner)
    for i, index in enumerate([1, 1, 2, 2, 2, 1]):
        sink.write(LabelEvent(i, i, 0, 0.0, 0.0, (Prediction(index, str(index), 1.0),)))
    assert [e.seq for e in inner.events] == [0, 2, 5]


class TruthCamera(CountingCamera):
    """Frames whose ground truth is their value % 3, as the demo scene carries it."""

    def read(self) -> Frame | None:
        frame = super().read()
        if frame is None:
            return None
        return Frame(frame.rgb, frame.timestamp_ns, frame.index, frame.index % 3)


def test_accuracy_against_the_sources_ground_truth() -> None:
    def wrong_every_tenth(rgb: np.ndarray) -> list[Prediction]:
        value = int(rgb[0, 0, 0])
        index = value % 3 if value % 10 else (value + 1) % 3
        return [Prediction(index, str(index), 1.0)]

    camera = TruthCamera(live=False, frames=100)
    sink = RecordingSink()
    with camera:
        summary = run_pipeline(camera, wrong_every_tenth, [sink], LoopSettings())
    assert summary.frames == 100
    assert summary.accuracy == pytest.approx(0.9)
    assert all(e.truth == e.frame_index % 3 for e in sink.events)
    assert "accuracy 90.0%" in summary.status_line()


def test_results_of_other_kinds_become_events_with_their_fields() -> None:
    from edge.events import Keypoint
    from edge.runtime.postprocess import Classification, FrameResult

    mask = np.zeros((4, 4), np.uint8)

    def pose(rgb: np.ndarray) -> FrameResult:
        return FrameResult("pose", (rgb.shape[1], rgb.shape[0]),
                           (Classification(0, "person", 0.7), Classification(1, "x", 0.1)),
                           keypoints=(Keypoint("nose", 1.0, 2.0, 0.9),), mask=mask)

    sink = RecordingSink()
    with CountingCamera(live=False, frames=3) as camera:
        run_pipeline(camera, pose, [sink], LoopSettings(smooth=5), backoff=FAST)
    assert len(sink.events) == 3
    event = sink.events[0]
    assert event.kind == "pose" and event.keypoints == (Keypoint("nose", 1.0, 2.0, 0.9),)
    assert [p.label for p in event.predictions] == ["person"]  # top_k 1, no smoothing
    assert event.frame_size == (4, 4) and event.mask is mask
    assert event.as_dict()["keypoints"] == [{"name": "nose", "x": 1.0, "y": 2.0, "score": 0.9}]
