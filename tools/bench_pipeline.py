"""Is the pipeline as fast as its slowest stage? Measured in one run on a 640x480 video.

1. decode alone: OpenCV reads (and converts to RGB) every frame of the video;
2. preprocess + inference alone: the classifier on frames already decoded into memory;
3. the full ``edge-run`` pipeline (capture thread, inference, JSON-lines sink to /dev/null).

Prints each stage's throughput, the pipeline's throughput as a fraction of the slowest stage
alone (target >= 0.9: the stages overlap instead of adding up), and the pipeline's
capture-to-label latency p50/p95. Without --video it writes a video of the reference images.

    python tools/bench_pipeline.py [--video FILE] [--model M] [--threads N] [--frames N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.camera.opencv import OpenCVSource  # noqa: E402
from edge.pipeline.runner import LoopSettings  # noqa: E402
from edge.pipeline.service import (  # noqa: E402
    ModelOptions,
    RunOptions,
    SourceOptions,
    run_service,
)
from edge.runtime import Classifier  # noqa: E402
from edge.runtime.policy import RuntimeOptions  # noqa: E402
from edge.sinks import SinkOptions  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DEFAULT_MODEL = DATA / "models" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
IMAGES = ("parrot.jpg", "cat.bmp", "grace_hopper.bmp")


def write_video(path: Path, frames: int, size: tuple[int, int] = (640, 480)) -> Path:
    """``frames`` frames cycling through the reference images, each held 20 frames (mp4v)."""
    pictures = []
    for name in IMAGES:
        image = cv2.imread(str(DATA / "images" / name))
        if image is None:
            raise SystemExit(f"bench_pipeline: cannot read {DATA / 'images' / name}")
        pictures.append(cv2.resize(image, size))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30.0, size)
    rng = np.random.default_rng(0)
    for i in range(frames):
        noise = rng.integers(-6, 7, (size[1], size[0], 3))  # every frame differs a little
        frame = np.clip(pictures[(i // 20) % len(pictures)] + noise, 0, 255).astype(np.uint8)
        writer.write(frame)
    writer.release()
    return path


def decode_alone(video: Path) -> tuple[float, list[np.ndarray]]:
    """Frames per second of decoding; also returns up to 60 decoded frames for stage 2."""
    kept: list[np.ndarray] = []
    count = 0
    with OpenCVSource(str(video), "file") as source:
        start = time.perf_counter()
        while (frame := source.read()) is not None:
            count += 1
            if len(kept) < 60:
                kept.append(frame.rgb)
        seconds = time.perf_counter() - start
    return count / seconds, kept


def inference_alone(model: Path, threads: int | None, frames: list[np.ndarray], count: int
                    ) -> float:
    with Classifier.open(str(model), threads=threads) as clf:
        clf.classify(frames[0])  # warm-up
        start = time.perf_counter()
        for i in range(count):
            clf.classify(frames[i % len(frames)], top_k=1)
        return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="a video file (default: one made here)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, help="inference threads (default: every core)")
    parser.add_argument("--frames", type=int, default=300,
                        help="frames of the made video, and of the inference-alone stage")
    parser.add_argument("--rounds", type=int, default=3, help="medians over this many rounds")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"bench_pipeline: {args.model} not found (needs ../shared/data)", file=sys.stderr)
        return 2
    decode, infer, pipeline, p50, p95 = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or write_video(Path(tmp) / "bench.mp4", args.frames)
        options = RunOptions(source=SourceOptions(camera=str(video)),
                             model=ModelOptions(model=str(args.model)),
                             runtime=RuntimeOptions(threads=args.threads),
                             loop=LoopSettings(status_interval_s=3600),
                             sinks=SinkOptions(output=os.devnull))
        for _ in range(args.rounds):  # interleaved, so a busy machine affects every stage alike
            decode_fps, frames = decode_alone(video)
            decode.append(decode_fps)
            infer.append(inference_alone(args.model, args.threads, frames, args.frames))
            summary = run_service(options, stdout=sys.stdout)
            pipeline.append(summary.fps)
            p50.append(summary.latency_p50_ms or 0.0)
            p95.append(summary.latency_p95_ms or 0.0)
    decode_fps, infer_fps, pipeline_fps = (float(np.median(v)) for v in (decode, infer, pipeline))
    slowest = min(decode_fps, infer_fps)
    fraction = pipeline_fps / slowest
    print(f"decode alone:                 {decode_fps:7.1f} fps")
    print(f"preprocess + inference alone: {infer_fps:7.1f} fps")
    print(f"full pipeline:                {pipeline_fps:7.1f} fps")
    print(f"pipeline / slowest stage:     {fraction:7.2f}  (target >= 0.90)")
    print(f"capture-to-label latency:     p50 {np.median(p50):.1f} ms, "
          f"p95 {np.median(p95):.1f} ms")
    print(f"(medians of {args.rounds} interleaved rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
