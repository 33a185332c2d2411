"""edge-classify as a whole process against a bare ai-edge-litert script doing the same work.

    python tools/bench_classify_process.py [--model M] [--images 100] [--runs 5] [--json]

The bare script (written out by this tool) loads the model, and per image reads it with
OpenCV, converts BGR to RGB, resizes with INTER_AREA, invokes and takes the argmax: what a user
would write. edge-classify runs on the same images with the same model (its default squash,
``--threads`` equal to the bare interpreter's default). Both run as fresh processes,
alternating, ``--runs`` times each; the medians give

* ``ratio_100``: edge-classify / bare on the ``--images`` images (goal <= 1.2),
* ``extra_1_s``: edge-classify minus bare on one image, the start-up cost (goal <= 0.35 s).

Each is also given in CPU seconds (user + system of the child, ``*_cpu``): on a machine shared
with other work a process waits for a core, and its wall time grows with the load and with the
CPU it needs, while its CPU time hardly moves; the CPU figures say what a quiet machine would
see. ``load`` is the 1-minute load average at the start.

The images are made here from the shared photos: crops of 50-100 % of each side, re-encoded
as JPEG, so sizes differ from image to image as a folder of photos does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DEFAULT_MODEL = DATA / "models" / "mobilenet_v2_1.0_224_quant.tflite"
PHOTOS = ("parrot.jpg", "cat.bmp", "grace_hopper.bmp")

BARE_SCRIPT = '''\
import sys
import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

interpreter = Interpreter(model_path=sys.argv[1])
interpreter.allocate_tensors()
inp = interpreter.get_input_details()[0]
out = interpreter.get_output_details()[0]
height, width = inp["shape"][1:3]
for path in sys.argv[2:]:
    rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    pixels = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    interpreter.set_tensor(inp["index"], pixels[None])
    interpreter.invoke()
    print(path, int(np.argmax(interpreter.get_tensor(out["index"])[0])))
'''


def make_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` JPEG crops of the shared photos, of varied sizes."""
    photos = [cv2.imread(str(DATA / "images" / name)) for name in PHOTOS]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        image = photos[i % len(photos)]
        h, w = image.shape[:2]
        fh, fw = rng.uniform(0.5, 1.0, 2)
        y, x = int(rng.integers(0, h - int(h * fh) + 1)), int(rng.integers(0, w - int(w * fw) + 1))
        path = folder / f"{i:04d}.jpg"
        cv2.imwrite(str(path), image[y:y + int(h * fh), x:x + int(w * fw)])
        paths.append(path)
    return paths


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(model: Path, images: list[Path], runs: int, folder: Path) -> dict[str, float]:
    bare = folder / "bare_classify.py"
    bare.write_text(BARE_SCRIPT)
    python = sys.executable
    edge = [python, "-m", "edge.cli.classify", "--model", str(model), "-q"]
    many, one = [str(p) for p in images], [str(images[0])]
    timed(edge + one)  # the first run of a model probes it once in a child: not start-up
    commands = {"bare_100": [python, str(bare), str(model), *many], "edge_100": edge + many,
                "bare_1": [python, str(bare), str(model), *one], "edge_1": edge + one}
    walls: dict[str, list[float]] = {key: [] for key in commands}
    cpus: dict[str, list[float]] = {key: [] for key in commands}
    load = os.getloadavg()[0]
    for _ in range(runs):  # alternating, so both see the same machine load
        for key, command in commands.items():
            wall, cpu = timed(command)
            walls[key].append(wall)
            cpus[key].append(cpu)
    wall_med = {key: statistics.median(values) for key, values in walls.items()}
    cpu_med = {key: statistics.median(values) for key, values in cpus.items()}
    return {**{f"{k}_s": round(v, 3) for k, v in wall_med.items()},
            **{f"{k}_cpu_s": round(v, 3) for k, v in cpu_med.items()},
            "ratio_100": round(wall_med["edge_100"] / wall_med["bare_100"], 3),
            "extra_1_s": round(wall_med["edge_1"] - wall_med["bare_1"], 3),
            "ratio_100_cpu": round(cpu_med["edge_100"] / cpu_med["bare_100"], 3),
            "extra_1_cpu_s": round(cpu_med["edge_1"] - cpu_med["bare_1"], 3),
            "images": len(images), "runs": runs, "load": round(load, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result = measure(args.model, make_images(folder, args.images), args.runs, folder)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.images} images: edge-classify {result['edge_100_s']:.2f} s, bare "
              f"{result['bare_100_s']:.2f} s, ratio {result['ratio_100']:.2f} (goal <= 1.2)")
        print(f"1 image: edge-classify {result['edge_1_s']:.2f} s, bare {result['bare_1_s']:.2f}"
              f" s, extra {result['extra_1_s']:.2f} s (goal <= 0.35)")
        print(f"CPU time: {args.images} images ratio {result['ratio_100_cpu']:.2f}, 1 image "
              f"extra {result['extra_1_cpu_s']:.2f} s (edge-classify "
              f"{result['edge_1_cpu_s']:.2f} s, bare {result['bare_1_cpu_s']:.2f} s); load "
              f"average {result['load']} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
