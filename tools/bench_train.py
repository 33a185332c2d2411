"""Benchmark ``edge-model train``'s training step, and int8 against float accuracy.

Training speed: for MobileNetV2 0.35/96 (the microcontroller size) and 1.0/224 (the Linux board
size), the same training step ``edge-model train`` runs (augmentation in numpy, then Keras'
``train_on_batch``) is timed over a few steps after one warm-up step (which traces the graph),
in the same process. Prints seconds per step, images per second, seconds per epoch of
``--epoch-images`` images, and the ratio of the two sizes.

Accuracy (with ``--model M.keras --data DIR``): ``edge-model evaluate``'s float and int8
accuracy on the held-out split, and the int8 drop in points.

Usage::

    python tools/bench_train.py [--steps 5] [--batch-size 32] [--epoch-images 1000]
    python tools/bench_train.py --model model.keras --data DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from edge.modelbuild.augment import Augmentation, augment_batch
from edge.modelbuild.build import build_mobilenetv2, import_tensorflow

SIZES = ((0.35, 96), (1.0, 224))


def time_steps(alpha: float, resolution: int, steps: int, batch: int) -> float:
    """Median seconds of one training step (augmentation + train_on_batch) after a warm-up."""
    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(0)
    model = build_mobilenetv2(alpha, resolution, 10)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), jit_compile=False,
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, resolution, resolution, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, batch)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        model.train_on_batch(augment_batch(rng, images, Augmentation()), labels)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def bench_speed(args: argparse.Namespace) -> dict[str, object]:
    rows = {}
    for alpha, resolution in SIZES:
        step = time_steps(alpha, resolution, args.steps, args.batch_size)
        rows[f"{alpha:g}/{resolution}"] = {
            "seconds_per_step": round(step, 4),
            "images_per_second": round(args.batch_size / step, 1),
            "seconds_per_epoch": round(step * -(-args.epoch_images // args.batch_size), 1)}
        print(f"MobileNetV2 {alpha:g}/{resolution}: {step:.3f} s per step of "
              f"{args.batch_size}, {args.batch_size / step:.1f} images/s, "
              f"{rows[f'{alpha:g}/{resolution}']['seconds_per_epoch']} s per epoch of "
              f"{args.epoch_images} images", flush=True)
    small, large = (rows[f"{a:g}/{r}"]["seconds_per_step"] for a, r in SIZES)
    ratio = round(float(large) / float(small), 2)  # type: ignore[arg-type]
    print(f"1.0/224 takes {ratio}x as long per step as 0.35/96")
    return {"batch_size": args.batch_size, "sizes": rows, "ratio_224_to_96": ratio}


def bench_accuracy(model: Path, data: Path) -> dict[str, object]:
    from edge.modelbuild.evaluate import evaluate

    report = evaluate(model, data)
    result = {s.name: round(s.accuracy, 4) for s in report.scores}
    print(f"{report.images} held-out images: " + ", ".join(
        f"{k} {v:.2%}" for k, v in result.items())
        + f"; int8 drop {report.int8_drop_points:+.2f} points")
    return {"images": report.images, "accuracy": result,
            "int8_drop_points": report.int8_drop_points}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epoch-images", type=int, default=1000)
    parser.add_argument("--model", type=Path, help="a trained .keras (its .tflite beside it)")
    parser.add_argument("--data", type=Path, help="its data folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if (args.model is None) != (args.data is None):
        parser.error("--model and --data go together")
    result = (bench_accuracy(args.model, args.data) if args.model is not None
              else bench_speed(args))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
