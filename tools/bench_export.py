"""Time model_data.cc generation against `xxd -i` on the same model, in the same run.

Usage: python tools/bench_export.py [MODEL]   (default: ../shared/data/models/
tf2_mobilenet_v2_1.0_224_ptq.tflite, about 4 MB)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from firmware_export.codegen.model_data import model_data_cc

DEFAULT = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "models"
           / "tf2_mobilenet_v2_1.0_224_ptq.tflite")


def best_of(runs: int, action: object) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_export.py", description=__doc__.splitlines()[0],
        epilog="example:\n  python tools/bench_export.py "
               "../shared/data/models/person_detect.tflite",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path, default=DEFAULT,
                        help=f"a .tflite file (default: {DEFAULT.name} from ../shared/data)")
    path = parser.parse_args(argv).model
    if not path.is_file():
        print(f"bench_export: {path} not found", file=sys.stderr)
        return 2
    content = path.read_bytes()
    ours = best_of(3, lambda: model_data_cc("g_model", content, False))
    print(f"{path.name}: {len(content):,} B")
    print(f"  edge-export model_data.cc  {ours:.3f} s")
    if shutil.which("xxd"):
        xxd = best_of(3, lambda: subprocess.run(["xxd", "-i", str(path)], check=True,
                                                stdout=subprocess.DEVNULL))
        print(f"  xxd -i                     {xxd:.3f} s  (ratio {ours / xxd:.2f})")
    else:
        print("  xxd -i                     (xxd not installed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
