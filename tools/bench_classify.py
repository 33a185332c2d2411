"""Benchmark edge's classifier against bare interpreters, and INTER_AREA against INTER_LINEAR.

    PYTHONPATH=. python tools/bench_classify.py [--model M] [--threads N] [--runs N]
        [--skip-interpolation]

1. Invoke latency through :class:`edge.runtime.Classifier` (``run``: set_tensor, invoke,
   get_tensor, dequantize) against bare ai-edge-litert doing set_tensor, invoke, get_tensor on the
   same model bytes, input and thread count. Runs alternate in one process so both see the same
   machine load; the ratio of medians is printed (target: within 3%). tflite-runtime is measured
   the same way when it is importable.
2. Resize interpolation: top-1 agreement of INTER_AREA and INTER_LINEAR on the reference images
   and on crops of them rescaled to camera resolutions, and the cost of each resize.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.camera.images import read_image  # noqa: E402
from edge.errors import BackendError  # noqa: E402
from edge.runtime import Classifier  # noqa: E402
from edge.runtime.backends import load_backend  # noqa: E402
from edge.runtime.preprocess import Preprocessor  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DEFAULT_MODEL = DATA / "models" / "mobilenet_v2_1.0_224_quant.tflite"
IMAGES = {"parrot.jpg": 89, "cat.bmp": 286, "grace_hopper.bmp": 653}
CAMERA_SIZES = ((640, 480), (1280, 720), (1920, 1080))


def bare_runner(interpreter_class: Any, content: bytes, threads: int, tensor: np.ndarray) -> Any:
    interpreter = interpreter_class(model_content=content, num_threads=threads)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def run() -> float:
        interpreter.set_tensor(inp, tensor)
        start = time.perf_counter()
        interpreter.invoke()
        elapsed = time.perf_counter() - start
        interpreter.get_tensor(out)
        return elapsed

    return run


def wrapper_runner(classifier: Classifier, tensor: np.ndarray) -> Any:
    def run() -> float:
        start = time.perf_counter()
        classifier.run(tensor)
        return time.perf_counter() - start

    return run


def bare_end_to_end(run_invoke: Any) -> Any:
    """Bare set_tensor + invoke + get_tensor timed as a whole, like the wrapper's run()."""
    def run() -> float:
        start = time.perf_counter()
        run_invoke()
        return time.perf_counter() - start

    return run


def interleave(runners: dict[str, Any], rounds: int, warmup: int = 5) -> dict[str, list[float]]:
    for run in runners.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            times[name].append(run() * 1e3)
    return times


def latency(model: Path, threads: int, rounds: int) -> None:
    content = model.read_bytes()
    with Classifier.open(content, threads=threads) as classifier:
        tensor = classifier.preprocess(read_image(DATA / "images" / "parrot.jpg"),
                                       color="bgr").copy()
        litert = load_backend("ai-edge-litert")
        runners = {"edge Classifier.run": wrapper_runner(classifier, tensor),
                   "bare ai-edge-litert": bare_end_to_end(
                       bare_runner(litert.interpreter_class, content, threads, tensor))}
        try:
            legacy = load_backend("tflite-runtime")
            runners[f"bare {legacy}"] = bare_end_to_end(
                bare_runner(legacy.interpreter_class, content, threads, tensor))
        except BackendError as e:
            print(f"tflite-runtime: not measured ({e})")
        times = interleave(runners, rounds)
    print(f"\n{model.name}, {threads} thread(s), {rounds} alternating rounds "
          f"(set_tensor + invoke + get_tensor; ms)")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:28} median {medians[name]:8.3f}  min {min(t):8.3f}  "
              f"p90 {np.percentile(t, 90):8.3f}")
    ours, bare = times["edge Classifier.run"], times["bare ai-edge-litert"]
    ratio = medians["edge Classifier.run"] / medians["bare ai-edge-litert"]
    paired = statistics.median(a / b for a, b in zip(ours, bare, strict=True))
    verdict = "within" if ratio <= 1.03 else "OUTSIDE"
    print(f"  ratio edge / bare ai-edge-litert: medians {ratio:.4f} ({verdict} the 3% target), "
          f"minimums {min(ours) / min(bare):.4f}, median of paired rounds {paired:.4f}")
    for name in medians:
        if name.startswith("bare tflite"):
            ratio = medians["edge Classifier.run"] / medians[name]
            print(f"  ratio edge / {name[5:]} = {ratio:.4f}")


def study_frames(seed: int = 0, per_image: int = 20) -> list[tuple[str, np.ndarray, int]]:
    """The reference images, and random crops of them rescaled to camera resolutions."""
    rng = np.random.default_rng(seed)
    frames = []
    for name, expected in IMAGES.items():
        image = read_image(DATA / "images" / name)
        frames.append((name, image, expected))
        rows, cols = image.shape[:2]
        for i in range(per_image):
            frac = rng.uniform(0.6, 1.0)
            h, w = int(rows * frac), int(cols * frac)
            top, left = rng.integers(0, rows - h + 1), rng.integers(0, cols - w + 1)
            size = CAMERA_SIZES[i % len(CAMERA_SIZES)]
            crop = cv2.resize(image[top:top + h, left:left + w], size,
                              interpolation=cv2.INTER_CUBIC)
            frames.append((f"{name} crop {i} at {size[0]}x{size[1]}", crop, expected))
    return frames


def interpolation_study(model: Path, threads: int) -> None:
    frames = study_frames()
    flags = {"INTER_AREA": cv2.INTER_AREA, "INTER_LINEAR": cv2.INTER_LINEAR}
    with Classifier.open(model, threads=threads) as classifier:
        tops: dict[str, list[int]] = {}
        margins: dict[str, list[float]] = {}
        for label, flag in flags.items():
            pre = Preprocessor(classifier.input_spec, "squash", flag)
            tops[label], margins[label] = [], []
            for _, frame, expected in frames:
                scores = classifier.run(pre(frame, "bgr"))
                tops[label].append(int(np.argmax(scores)))
                margins[label].append(float(scores[expected]))
    wanted = [e for _, _, e in frames]
    agree = sum(a == b for a, b in zip(tops["INTER_AREA"], tops["INTER_LINEAR"], strict=True))
    print(f"\n{model.name}: {len(frames)} frames (3 reference images + crops at "
          f"{', '.join(f'{w}x{h}' for w, h in CAMERA_SIZES)})")
    print(f"  top-1 agreement INTER_AREA vs INTER_LINEAR: {agree}/{len(frames)}")
    for label in flags:
        correct = sum(t == e for t, e in zip(tops[label], wanted, strict=True))
        print(f"  {label:13} top-1 = expected class: {correct}/{len(frames)}, mean score of the "
              f"expected class {statistics.mean(margins[label]):.3f}")
    print("  resize cost to 224x224 (median of 200, microseconds):")
    for w, h in CAMERA_SIZES:
        frame = cv2.resize(read_image(DATA / "images" / "parrot.jpg"), (w, h))
        dst = np.empty((224, 224, 3), np.uint8)
        costs = []
        for label, flag in flags.items():
            t = []
            for _ in range(200):
                start = time.perf_counter()
                cv2.resize(frame, (224, 224), dst=dst, interpolation=flag)
                t.append((time.perf_counter() - start) * 1e6)
            costs.append(f"{label} {statistics.median(t):7.0f}")
        print(f"    {w}x{h}: " + "   ".join(costs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300, help="alternating rounds")
    parser.add_argument("--skip-interpolation", action="store_true")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"{args.model}: not found (reference data lives in ../shared/data)", file=sys.stderr)
        return 2
    latency(args.model, args.threads, args.runs)
    if not args.skip_interpolation:
        interpolation_study(args.model, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
