"""Detector speed: decoding and NMS alone, and the whole pipeline against invoke alone.

    python tools/bench_detect.py [--repeats 200] [--frames 20] [--json]

1. Decode + NMS of YOLOv8n's [1, 84, 8400] int8 output (the real output on grace_hopper.bmp,
   and the same head at thresholds 0.01 and 0, where about 100 and 300 candidates (every one
   with a non-zero score) reach the NMS), timed
   over ``--repeats`` calls of the decoder :class:`edge.runtime.Classifier` uses (dequantize,
   best class, threshold, boxes, class-wise NMS, mapping to the frame, labels). Goal: well
   under 2 ms.
2. The pipeline (:func:`edge.pipeline.runner.run_pipeline`: capture thread, preprocessing, invoke,
   decode, event, sink thread) with YOLOv8n and BlazeFace on 640x480 frames, against invoke
   alone (set_tensor + invoke on one tensor, the same interpreter), back to back in pairs in
   the same process so both see the same load; the median of the pairs' ratios is printed.
   Goal: pipeline fps >= 0.9 x invoke-alone fps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.camera.base import Frame, FrameSource  # noqa: E402
from edge.pipeline.runner import LoopSettings, run_pipeline  # noqa: E402
from edge.runtime import Classifier  # noqa: E402
from edge.runtime.postprocess import DecodeOptions  # noqa: E402
from edge.sinks.base import LabelSink  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
YOLO = DATA / "models" / "yolov8n_full_integer_quant.tflite"
FACE = DATA / "models" / "face_detection_short_range.tflite"
FRAME_SIZE = (640, 480)


class StillCamera(FrameSource):
    """``frames`` copies of one photo at camera size, as fast as they are taken."""

    name = "still"
    live = False

    def __init__(self, rgb: np.ndarray, frames: int) -> None:
        super().__init__()
        self.rgb, self.left = rgb, frames

    def open(self) -> None:
        return

    def close(self) -> None:
        return

    def read(self) -> Frame | None:
        if self.left == 0:
            return None
        self.left -= 1
        return self._frame(self.rgb.copy(), time.monotonic_ns())


class Discard(LabelSink):
    name = "discard"

    def write(self, event: object) -> None:
        return


def photo() -> np.ndarray:
    bgr = cv2.imread(str(DATA / "images" / "grace_hopper.bmp"))
    return cv2.cvtColor(cv2.resize(bgr, FRAME_SIZE, interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2RGB)


def decode_ms(clf: Classifier, rgb: np.ndarray, repeats: int, threshold: float | None
              ) -> dict[str, float]:
    outputs = clf.run_outputs(clf.preprocess(rgb))
    options = DecodeOptions(threshold=threshold)
    size = (rgb.shape[1], rgb.shape[0])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = clf.decode(outputs, size, options)
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": round(statistics.median(times), 3), "p95_ms":
            round(float(np.percentile(times, 95)), 3), "boxes": len(result.detections)}


def invoke_alone_fps(clf: Classifier, rgb: np.ndarray, frames: int) -> float:
    tensor = clf.preprocess(rgb).copy()
    start = time.perf_counter()
    for _ in range(frames):
        clf.run_outputs(tensor)
    return frames / (time.perf_counter() - start)


def pipeline_fps(clf: Classifier, rgb: np.ndarray, frames: int) -> float:
    options = DecodeOptions()
    start = time.perf_counter()
    summary = run_pipeline(StillCamera(rgb, frames), lambda f: clf.label(f, options=options),
                           [Discard()], LoopSettings(max_frames=frames, status_interval_s=1e9),
                           stop=threading.Event())
    assert summary.frames == frames
    return frames / (time.perf_counter() - start)


def compare(model: Path, rgb: np.ndarray, frames: int, rounds: int = 5) -> dict[str, float]:
    """Invoke alone and the pipeline, run back to back ``rounds`` times; the ratio is the median
    of each pair's ratio, so load that drifts between pairs does not enter it."""
    with Classifier.open(model) as clf:
        invoke_alone_fps(clf, rgb, 2)  # warm up
        alone, piped = [], []
        for _ in range(rounds):
            alone.append(invoke_alone_fps(clf, rgb, frames))
            piped.append(pipeline_fps(clf, rgb, frames))
    ratios = [p / a for a, p in zip(alone, piped, strict=True)]
    return {"invoke_alone_fps": round(statistics.median(alone), 2),
            "pipeline_fps": round(statistics.median(piped), 2),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rgb = photo()
    with Classifier.open(YOLO) as clf:
        results = {"decode_yolov8n": decode_ms(clf, rgb, args.repeats, None),
                   "decode_yolov8n_threshold_0.01": decode_ms(clf, rgb, args.repeats, 0.01),
                   "decode_yolov8n_threshold_0": decode_ms(clf, rgb, args.repeats // 4, 0.0)}
    results["pipeline_yolov8n"] = compare(YOLO, rgb, max(4, args.frames // 4))
    results["pipeline_blazeface"] = compare(FACE, rgb, args.frames * 5)
    if args.json:
        print(json.dumps(results))
        return 0
    for name in ("decode_yolov8n", "decode_yolov8n_threshold_0.01",
                 "decode_yolov8n_threshold_0"):
        r = results[name]
        print(f"{name}: {r['median_ms']:.3f} ms median, {r['p95_ms']:.3f} ms p95, "
              f"{r['boxes']} boxes (goal: well under 2 ms)")
    for name in ("pipeline_yolov8n", "pipeline_blazeface"):
        r = results[name]
        print(f"{name}: pipeline {r['pipeline_fps']:.1f} fps, invoke alone "
              f"{r['invoke_alone_fps']:.1f} fps, ratio {r['ratio']:.3f} (pairs "
              f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}; goal >= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
