"""``edge-run --serial`` in binary mode and ``edge-listen`` on the other end of real ttys agree
frame for frame.

Two pty pairs joined by a relay thread in the test: edge-run writes to the first slave,
edge-listen reads the second. Both slaves are put in raw mode before either process starts,
so no byte is translated; edge-run starts once edge-listen says it is listening, since opening
the port flushes what is waiting in it.
"""

from __future__ import annotations

import json
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
import tty
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from edge.events import DETECT, Detection, LabelEvent, Prediction
from edge.serial.protocol import (
    MAX_DETECTIONS,
    STREAM_START,
    DetectionRecord,
    StreamDecoder,
    encode_binary,
    encode_text,
    quantize,
)
from edge.sinks.base import LabelSink, OnChangeSink
from edge.sinks.serial import SerialSink, fit_detections, label_record, run_id
from tests.conftest import ROOT, shared_file
from tests.process_lines import rest_of_lines, stderr_lines, wait_line
from tests.test_listen_pty import listener, summary_of
from tests.test_run_cli import SEGMENT_FRAMES, SEGMENTS, segments_video  # noqa: F401

pytestmark = pytest.mark.serial

ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": ""}
FRAMES = SEGMENT_FRAMES * len(SEGMENTS)
NAMES = ("person", "bicycle", "car")


@contextmanager
def linked_ptys() -> Iterator[tuple[str, str]]:
    """Two tty paths: bytes written to the first come out of the second."""
    master_a, slave_a = os.openpty()
    master_b, slave_b = os.openpty()
    tty.setraw(slave_a)
    tty.setraw(slave_b)
    done = threading.Event()

    def relay() -> None:
        while not done.is_set():
            ready, _, _ = select.select([master_a], [], [], 0.05)
            if ready:
                try:
                    data = os.read(master_a, 4096)
                except OSError:  # the writer closed its end
                    continue
                os.write(master_b, data)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield os.ttyname(slave_a), os.ttyname(slave_b)
    finally:
        done.set()
        thread.join(5)
        for fd in (master_a, slave_a, master_b, slave_b):
            os.close(fd)


@contextmanager
def listening(reader_port: str, listen_args: list[str]
              ) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str], list[str]]]:
    """``edge-listen PORT ARGS -v``, yielded once it says it is listening: opening the port
    flushes the tty's input, so a record written before then would be lost. Yields the process,
    its remaining stderr lines and the lines read so far; kills it if still running at the end."""
    listener = subprocess.Popen(
        [sys.executable, "-m", "edge", "listen", reader_port, *listen_args, "-v"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        lines = stderr_lines(listener)
        wait_line(lines, r"listening on ", seen, timeout=120)
        yield listener, lines, seen
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def rest_of(listener: subprocess.Popen[str], lines: queue.Queue[str], seen: list[str],
            timeout: float) -> tuple[str, str]:
    """Waits for the listener to end by itself; its stdout and its whole stderr."""
    out: list[str] = []  # stdout read beside the wait (a full pipe would block the listener)
    reader = threading.Thread(target=lambda: out.append(listener.stdout.read()),  # type: ignore
                              daemon=True)
    reader.start()
    listener.wait(timeout=timeout)
    reader.join(timeout)
    return "".join(out), rest_of_lines(lines, seen)


def run_into_listener(run_args: list[str], listen_args: list[str]
                      ) -> tuple[subprocess.CompletedProcess[str], int, str, str]:
    """``edge-run ARGS --serial TTY`` with ``edge-listen ARGS`` on the other end of linked
    ptys; returns the run, and the listener's exit code, stdout and stderr."""
    with linked_ptys() as (writer_port, reader_port), \
            listening(reader_port, listen_args) as (listener, lines, seen):
        run = subprocess.run(
            [sys.executable, "-m", "edge", "run", *run_args, "--serial", writer_port],
            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
        # The listener ends by itself (--max-frames, --duration); this guards a hang only.
        heard, listen_err = rest_of(listener, lines, seen, timeout=240)
    return run, listener.returncode, heard, listen_err


def test_binary_serial_stream_matches_the_labels_frame_for_frame(segments_video) -> None:  # noqa: F811
    model = shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")
    run, listen_code, heard, listen_err = run_into_listener(
        ["--camera", str(segments_video), "--model", str(model), "--top-k", "3",
         "--serial-format", "binary", "--stdout", "--quiet"],
        ["--format", "binary", "--json", "--max-frames", str(FRAMES), "--duration", "90"])
    assert run.returncode == 0, run.stderr
    assert listen_code == 0, listen_err
    sent = [json.loads(line) for line in run.stdout.splitlines()]
    received = [json.loads(line) for line in heard.splitlines()]
    assert len(sent) == len(received) == FRAMES
    for s, r in zip(sent, received, strict=True):
        assert r["seq"] == s["seq"]
        assert r["label"] == s["index"]
        assert r["score"] == pytest.approx(s["score"], abs=2e-5)
        assert r["latency_ms"] == pytest.approx(s["latency_ms"], abs=0.006)
        assert [pair[0] for pair in r["top_k"]] == [p["index"] for p in s["top_k"][1:]]
    summary = json.loads(listen_err.strip().splitlines()[-1])["summary"]
    assert summary["frames"] == FRAMES
    assert summary["crc_errors"] == summary["gaps"] == summary["malformed"] == 0


# --- detector events and run ids, on plain data -----------------------------------------------

def _detect_event(seq: int, boxes: list[tuple[int, str, float, tuple[float, ...]]],
                  size: tuple[int, int] | None = (640, 480)) -> LabelEvent:
    detections = tuple(Detection(i, name, score, box) for i, name, score, box in boxes)  # type: ignore[arg-type]
    best = sorted(detections, key=lambda d: -d.score)
    return LabelEvent(seq=seq, frame_index=seq, capture_ns=seq * 40_000_000, latency_ms=3.25,
                      wall_time=0.0, kind=DETECT, detections=detections, frame_size=size,
                      predictions=tuple(Prediction(d.index, d.label, d.score) for d in best))


def test_detector_event_becomes_a_detector_record_normalised_and_clamped() -> None:
    event = _detect_event(5, [(16, "dog", 0.4, (-10.0, 240.0, 320.0, 500.0)),
                              (0, "person", 0.9, (64.0, 48.0, 576.0, 432.0))], (640, 480))
    record = label_record(event, with_text=True, seq=2, run=0xABCDEF01)
    assert (record.seq, record.frame, record.run) == (2, 5, 0xABCDEF01)
    assert (record.label, record.text, record.score) == (0, "person", 0.9)
    assert record.top_k == ()
    assert record.detections == (DetectionRecord(0, 0.9, (0.1, 0.1, 0.9, 0.9)),
                                 DetectionRecord(16, 0.4, (0.0, 0.5, 0.5, 1.0)))
    for encode, mode in ((encode_binary, "binary"), (encode_text, "text")):
        decoder = StreamDecoder(mode)  # type: ignore[arg-type]
        [got] = decoder.feed(STREAM_START + encode(record))
        assert got == quantize(record, mode)  # type: ignore[arg-type]
        # a box edge within 1/65535 (binary) or 5e-5 + 7.7e-6 (text) of the frame's size
        for sent, back in zip(record.detections or (), got.detections or (), strict=True):
            assert back.box == pytest.approx(sent.box, abs=6e-5)


def test_detector_that_found_nothing_is_not_a_classification() -> None:
    record = label_record(_detect_event(1, []), with_text=False)
    assert record.detections == () and record.label == 0xFFFF and record.score == 0.0
    [got] = StreamDecoder("binary").feed(STREAM_START + encode_binary(record))
    assert got.detections == ()
    classify = LabelEvent(1, 1, 0, 1.0, 0.0, (Prediction(3, "cat", 0.5),))
    assert label_record(classify, with_text=False).detections is None


def test_many_detections_keep_the_best_that_fit_and_count_the_rest() -> None:
    boxes = [(i % 80, f"c{i}", (i + 1) / 100, (float(i), 0.0, float(i + 10), 10.0))
             for i in range(40)]
    record, cut = fit_detections(label_record(_detect_event(3, boxes), with_text=True, seq=0,
                                              device="cam-1", run=7))
    assert len(record.detections) == MAX_DETECTIONS - 1 and cut == 40 - len(record.detections)
    assert [d.score for d in record.detections] == [(40 - i) / 100
                                                    for i in range(len(record.detections))]
    encode_binary(record), encode_text(record)  # fits one frame in both modes
    no_size = label_record(_detect_event(3, boxes, size=None), with_text=False)
    assert no_size.detections == ()  # boxes that cannot be normalised are not invented


def test_serial_sink_sends_run_and_counts_trimmed_over_a_loop_url() -> None:
    sink = SerialSink("loop://", fmt="binary")
    try:
        boxes = [(1, "x", 0.5, (0.0, 0.0, 10.0, 10.0))] * 30
        sink.write(_detect_event(0, boxes))
        sink.write(_detect_event(1, boxes[:2]))
        data = sink._link.read(4096)
    finally:
        sink.close()
    got = StreamDecoder("binary").feed(data)
    assert [len(r.detections or ()) for r in got] == [MAX_DETECTIONS - 1, 2]
    assert got[0].run == got[1].run == sink._own_run  # one run id per sink
    assert sink.counters()["trimmed"] == 30 - (MAX_DETECTIONS - 1)
    other = SerialSink("loop://", fmt="json", run=run_id("1a2b3c4d"))
    try:
        other.write(_detect_event(0, boxes[:1]))
        line = other._link.read(4096)
    finally:
        other.close()
    assert b'"run":"1a2b3c4d"' in line
    assert run_id(None) is None and run_id("") is None and run_id(2**33 + 5) == 5
    assert run_id("6932f1c4-9a1e") == zlib.crc32(b"6932f1c4-9a1e") != run_id("6932f1c4-9a1f")


def test_on_change_passes_a_detector_event_when_labels_or_counts_change() -> None:
    got: list[int] = []

    class Collect(LabelSink):
        name = "collect"

        def write(self, event: LabelEvent) -> None:
            got.append(event.seq)

    sink = OnChangeSink(Collect())
    person = (0, "person", 0.9, (0.0, 0.0, 5.0, 5.0))
    dog = (16, "dog", 0.8, (5.0, 5.0, 9.0, 9.0))
    for seq, boxes in enumerate([[person], [person], [person, dog], [dog, person],
                                 [person, person, dog], [], []]):
        sink.write(_detect_event(seq, boxes))
    assert got == [0, 2, 4, 5]  # same set moved or reordered (1, 3) and nothing again (6) skip


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_detector_events_through_a_tty_reach_edge_listen(fmt: str) -> None:
    # The sink on one end of real ttys, edge-listen on the other: every box arrives, in order,
    # normalised, with the label names from --labels in binary mode and from the text in json.
    rng = np.random.default_rng(11)
    events = []
    for seq in range(60):
        boxes = []
        for _ in range(int(rng.integers(0, 25))):  # up to 24: some events are trimmed
            x0, x1 = sorted(rng.uniform(-20, 660, 2))
            y0, y1 = sorted(rng.uniform(-20, 500, 2))
            index = int(rng.integers(0, 3))
            boxes.append((index, NAMES[index], float(rng.uniform(0.3, 1.0)), (x0, y0, x1, y1)))
        events.append(_detect_event(seq, boxes, (640, 480)))
    labels = Path(tempfile.mkdtemp()) / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    with linked_ptys() as (writer_port, reader_port), listener(
            reader_port, "--json", "--labels", str(labels), "--format", fmt, "--max-frames",
            str(len(events)), "--duration", "60", "-v") as (proc, out, err):
        err.wait_line("listening on")  # opening flushes the tty input; write after it
        sink = SerialSink(writer_port, fmt=fmt, device="cam-9")
        for event in events:
            sink.write(event)
        sink.close()
        assert proc.wait(60) == 0
        out.drain()
        err.drain()
    heard = "\n".join(out.lines)
    got = [json.loads(line) for line in heard.splitlines()]
    assert [g["frame"] for g in got] == [e.seq for e in events]
    assert len({g["run"] for g in got}) == 1 and {g["device"] for g in got} == {"cam-9"}
    trimmed = 0
    for event, g in zip(events, got, strict=True):
        sent = sorted(event.detections, key=lambda d: -d.score)
        assert len(g["detections"]) == min(len(sent), MAX_DETECTIONS - 1)
        trimmed += len(sent) - len(g["detections"])
        for d, r in zip(sent, g["detections"], strict=False):
            assert (r["index"], r["label"]) == (d.index, d.label)
            assert r["score"] == pytest.approx(d.score, abs=6e-5)
            want = np.clip(np.array(d.box) / [640, 480, 640, 480], 0, 1)
            assert r["box"] == pytest.approx(list(want), abs=6e-5)
        if sent:
            assert (g["label"], g["text"]) == (sent[0].index, sent[0].label)
        assert g["kind"] == "detect"
        assert g["counts"] == dict(Counter(r["label"] for r in g["detections"]))
    assert trimmed > 0 and sink.counters()["trimmed"] == trimmed
    summary = summary_of(err)
    assert summary["malformed"] == summary["crc_errors"] == summary["lost"] == 0


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_edge_run_with_a_real_detector_streams_its_boxes(fmt: str, tmp_path: Path) -> None:
    # YOLOv8n (the shared model) on the shared photos and a photo made here (mirrored and
    # cropped), through real ttys: every box edge-run labels arrives at edge-listen.
    pytest.importorskip("edge.decode", reason="needs the detector kinds (issue 19 point 1)")
    import cv2

    model = shared_file("models/yolov8n_full_integer_quant.tflite")
    coco = shared_file("labels/coco80_labels.txt")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("grace_hopper.bmp", "cat.bmp", "no_person.bmp"):
        (photos / name).write_bytes(shared_file(f"images/{name}").read_bytes())
    hopper = cv2.imread(str(shared_file("images/grace_hopper.bmp")))
    assert cv2.imwrite(str(photos / "hopper_mirrored.png"), cv2.flip(hopper, 1)[100:600, :500])
    run, listen_code, heard, listen_err = run_into_listener(
        ["--camera", str(photos), "--model", str(model), "--labels", str(coco),
         "--threshold", "0.25", "--serial-format", fmt, "--stdout", "--quiet"],
        ["--format", "binary" if fmt == "binary" else "json", "--json", "--labels", str(coco),
         "--max-frames", "4", "--duration", "120"])
    assert run.returncode == 0, run.stderr
    assert listen_code == 0, listen_err
    sent = [json.loads(line) for line in run.stdout.splitlines()]
    received = [json.loads(line) for line in heard.splitlines()]
    assert len(sent) == len(received) == 4
    assert sum(len(s["detections"]) for s in sent) >= 4  # person, tie, cat at least
    for s, r in zip(sent, received, strict=True):
        assert r["kind"] == s["kind"] == "detect" and r["frame"] == s["seq"]
        assert r["counts"] == s["counts"]
        width, height = s["width"], s["height"]
        edge = 0.05 + 1e-4 * max(width, height)  # as_dict's 0.1 px and the wire's quantization
        for d, g in zip(s["detections"], r["detections"], strict=True):
            assert (g["label"], g["index"]) == (d["label"], d["index"])
            assert g["score"] == pytest.approx(d["score"], abs=6e-5)
            box = [g["box"][0] * width, g["box"][1] * height, g["box"][2] * width,
                   g["box"][3] * height]
            assert box == pytest.approx(d["box"], abs=edge)


def test_an_event_the_protocol_cannot_carry_is_dropped_and_counted() -> None:
    sink = SerialSink("loop://", fmt="json")
    try:
        sink.write(LabelEvent(0, 0, 0, 1.0, 0.0, (Prediction(3, "cat", 0.5),)))
        sink.write(LabelEvent(1, 1, 0, 1.0, 0.0, (Prediction(70_000, "big", 0.5),)))
        sink.write(LabelEvent(2, 2, 0, 1.0, 0.0, (Prediction(4, "x" * 3000, 0.5),)))
        sink.write(LabelEvent(3, 3, 0, 1.0, 0.0, (Prediction(5, "dog", 0.5),)))
        data = sink._link.read(8192)
    finally:
        sink.close()
    decoder = StreamDecoder("text")
    assert [(r.seq, r.text) for r in decoder.feed(data)] == [(0, "cat"), (3, "dog")]
    assert decoder.stats.lost == 2  # the receiver sees the gap
    assert sink.counters()["unsendable"] == 2
