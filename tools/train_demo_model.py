"""Train, quantize and ship the demo model: MobileNetV2 alpha 0.35 at 96x96 on rendered digits.

Seeded and reproducible. Renders the data set once into memory with ``edge.demo.scene``
(320x240 frames squash-resized to 96x96 with INTER_AREA, exactly as the runtime preprocesses
camera frames), trains from random weights on 2 CPU threads, quantizes to full int8 with
``edge.modelbuild``, measures int8 top-1 on a freshly rendered held-out set with ai-edge-litert,
and writes ``edge/demo/demo_model.tflite`` and ``edge/demo/labels.txt``.

Usage::

    python tools/train_demo_model.py [--seed 4] [--train 24000] [--epochs 8]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.demo import labels_path, model_path
from edge.demo.scene import LABELS, render_sample
from edge.modelbuild.build import build_mobilenetv2, import_tensorflow
from edge.modelbuild.quantize import (
    check_quantization,
    load_keras_model,
    preprocess_frame,
    quantize_keras,
    write_atomic,
)

RESOLUTION = 96
ALPHA = 0.35
FRAME_SIZE = (320, 240)
MIN_ACCURACY = 0.95


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def render_set(seed: int, stream: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Render ``count`` samples from the independent random stream (seed, stream)."""
    rng = np.random.default_rng([seed, stream])
    x = np.empty((count, RESOLUTION, RESOLUTION, 3), np.uint8)
    y = np.empty(count, np.int64)
    start = time.perf_counter()
    for i in range(count):
        frame, y[i] = render_sample(rng, FRAME_SIZE)
        x[i] = preprocess_frame(frame, (RESOLUTION, RESOLUTION))
        if (i + 1) % 5000 == 0 or i + 1 == count:
            log(f"  rendered {i + 1}/{count} ({time.perf_counter() - start:.0f} s)")
    return x, y


def make_model(tf: Any, steps: int, lr: float, init_from: Path | None) -> Any:
    if init_from is None:
        model = build_mobilenetv2(ALPHA, RESOLUTION, len(LABELS))
    else:
        model = load_keras_model(init_from)
    for layer in model.get_layer(index=-1).layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.99  # Keras' 0.999 lags behind in a short training run
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        0.0, steps, alpha=0.01, warmup_target=lr, warmup_steps=min(200, steps // 10)
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class ProgressLog:
    """Keras callback printing a line every ``every`` batches."""

    def __init__(self, tf: Any, every: int) -> None:
        outer = self

        class _Callback(tf.keras.callbacks.Callback):  # type: ignore[misc]
            def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None):
                if (batch + 1) % outer.every == 0 and logs:
                    log(f"    batch {batch + 1}: loss {logs['loss']:.4f} "
                        f"acc {logs['accuracy']:.4f}")

            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None):
                logs = logs or {}
                log(f"  epoch {epoch + 1}: loss {logs.get('loss', 0):.4f} "
                    f"acc {logs.get('accuracy', 0):.4f} val_acc {logs.get('val_accuracy', 0):.4f}")

        self.every = every
        self.callback = _Callback()


def int8_accuracy(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of an int8 model with ai-edge-litert, quantizing inputs as the runtime."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=2)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    scale, zero_point = inp["quantization"]
    correct = 0
    for frame, label in zip(x, y, strict=True):
        q = np.clip(np.round(frame.astype(np.float32) / scale + zero_point), -128, 127)
        interpreter.set_tensor(inp["index"], q.astype(np.int8)[None])
        interpreter.invoke()
        correct += int(np.argmax(interpreter.get_tensor(out["index"])[0]) == label)
    return correct / len(y)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--train", type=int, default=24000, help="training images")
    parser.add_argument("--val", type=int, default=1000, help="float validation images")
    parser.add_argument("--test", type=int, default=2500, help="held-out int8 test images")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--calibration", type=int, default=300, help="calibration images")
    parser.add_argument("--keras-out", type=Path, help="also save the float model here")
    parser.add_argument("--init-from", type=Path, help="continue training this .keras model")
    parser.add_argument("--stream", type=int, default=0,
                        help="random stream of the training set (use a new one with --init-from)")
    parser.add_argument("--out-dir", type=Path, help="write model and labels here instead")
    args = parser.parse_args(argv)
    if args.test < 2000:
        parser.error(f"--test (={args.test}) must be >= 2000")
    return args


def train(tf: Any, args: argparse.Namespace) -> tuple[Any, np.ndarray]:
    log("rendering the training, validation and test sets")
    x_train, y_train = render_set(args.seed, 10 * args.stream, args.train)
    x_val, y_val = render_set(args.seed, 1, args.val)
    steps = args.epochs * (args.train // args.batch_size)
    model = make_model(tf, steps, args.lr, args.init_from)
    data = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(y_train), seed=args.seed, reshuffle_each_iteration=True)
        .batch(args.batch_size, drop_remainder=True)
        .prefetch(2)
    )
    log(f"training {model.name}: {model.count_params()} parameters, {steps} steps")
    start = time.perf_counter()
    model.fit(data, epochs=args.epochs, validation_data=(x_val, y_val), verbose=0,
              callbacks=[ProgressLog(tf, 200).callback])
    log(f"training took {(time.perf_counter() - start) / 60:.1f} min")
    return model, x_train


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    log(f"command: {shlex.join([sys.executable, *sys.argv])}")
    log(f"seed {args.seed}; labels {', '.join(LABELS)}")
    model, x_train = train(tf, args)
    if args.keras_out:
        model.save(args.keras_out)
    log(f"quantizing to int8 with {args.calibration} calibration images")
    calibration = list(x_train[: args.calibration])
    tflite = quantize_keras(model, calibration)
    check_quantization(tflite, calibration)
    x_test, y_test = render_set(args.seed, 2, args.test)
    accuracy = int8_accuracy(tflite, x_test, y_test)
    log(f"int8 top-1 on {args.test} held-out images (seed {args.seed}, stream 2): "
        f"{accuracy:.2%}; model {len(tflite)} bytes")
    if accuracy < MIN_ACCURACY:
        log(f"FAILED: below {MIN_ACCURACY:.0%}; model not written")
        return 1
    out_model = args.out_dir / model_path().name if args.out_dir else model_path()
    out_labels = args.out_dir / labels_path().name if args.out_dir else labels_path()
    write_atomic(out_model, tflite)
    write_atomic(out_labels, ("\n".join(LABELS) + "\n").encode())
    log(f"wrote {out_model} and {out_labels}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
