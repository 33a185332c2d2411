"""Train, quantize and ship the demo model with ``edge-model``, on the rendered digit scene.

The one training path: this script only renders the scene into a folder of class folders
(``edge.demo.scene.write_image_folder``: 320x240 frames squash-resized to 96x96 with INTER_AREA,
exactly as the runtime preprocesses camera frames) and then runs ``edge-model train``,
``edge-model quantize`` and ``edge-model evaluate`` on it. The model is written to
``edge/demo/demo_model.tflite`` (labels embedded, and ``edge/demo/labels.txt``) only when its
int8 accuracy on the held-out split reaches 95 %.

Usage::

    python tools/train_demo_model.py [--seed 4] [--per-class 2500] [--epochs 8] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from edge.cli.model import main as edge_model
from edge.demo import labels_path, model_path
from edge.demo.scene import LABELS, write_image_folder
from edge.outputs import atomic_write_bytes, atomic_write_text

MIN_ACCURACY = 0.95


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=2500, help="rendered images per class")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--data", type=Path, help="render into (or reuse) this folder")
    parser.add_argument("--out-dir", type=Path, help="write model and labels here instead")
    return parser.parse_args(argv)


def render(folder: Path, per_class: int, seed: int) -> None:
    if folder.is_dir() and any(folder.iterdir()):
        print(f"reusing the images in {folder}")
        return
    start = time.perf_counter()
    write_image_folder(folder, per_class, seed=seed, size=(320, 240), save_size=(96, 96))
    print(f"rendered {per_class} x {len(LABELS)} images in {time.perf_counter() - start:.0f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="edge-demo-"))
    data = args.data or work / "data"
    render(data, args.per_class, args.seed)
    keras_file, tflite = work / "demo.keras", work / "demo.tflite"
    steps = [["train", str(data), str(keras_file), "--alpha", "0.35", "--resolution", "96",
              "--no-flip", "--epochs", str(args.epochs), "--patience", "3",
              "--seed", str(args.seed)],
             ["quantize", str(keras_file), str(tflite)]]
    for step in steps:
        print("edge-model " + " ".join(step), flush=True)
        if (code := edge_model(step)) != 0:
            return code
    from edge.modelbuild.evaluate import evaluate

    report = evaluate(keras_file, data)
    print(json.dumps({s.name: round(s.accuracy, 4) for s in report.scores}))
    int8 = report.score("int8")
    if int8 is None or int8.accuracy < MIN_ACCURACY:
        print(f"FAILED: int8 accuracy below {MIN_ACCURACY:.0%}; model not written (see {work})")
        return 1
    out_model = args.out_dir / model_path().name if args.out_dir else model_path()
    out_labels = args.out_dir / labels_path().name if args.out_dir else labels_path()
    atomic_write_bytes(out_model, tflite.read_bytes())
    atomic_write_text(out_labels, "\n".join(LABELS) + "\n")
    print(f"wrote {out_model} and {out_labels}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
