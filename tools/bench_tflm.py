"""TFLM in the loop: library build time (cold and cached), --verify time per model, and the
predicted / real minimal arena per model per build.

Usage: python tools/bench_tflm.py [--cold] [--all-kernels] [MODEL ...]
(default models: ../shared/data/models/person_detect.tflite and the bundled demo model).

The library holds the kernels of the models' operators (``--all-kernels``: every kernel of the
tree, as before libraries were built per operator set). Cached lookups are timed against the
cold build (``--cold`` builds into a fresh temporary EDGE_CACHE_DIR: minutes per library) or,
without ``--cold``, against the build time the cache recorded when it made the library. A cold
build also prints the CPU seconds of its compiler processes (``RUSAGE_CHILDREN``), which a
loaded machine changes less than the wall time. --verify times are printed with the pip
interpreter's own bisection as the in-process baseline.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from edge.boards import get_board
from edge.errors import BudgetError
from edge.model import read_model
from firmware_export.export import export_model
from firmware_export.tflm.build import build_library
from firmware_export.tflm.targets import get_target
from firmware_export.tflm.tree import locate_tree
from firmware_export.verify.ladder import verify_export

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODELS = (SHARED / "data" / "models" / "person_detect.tflite",
          ROOT / "edge" / "demo" / "demo_model.tflite")
TREES = {"reference": SHARED / "tflm" / "tflm_tree.tar.gz",
         "cmsis-nn": SHARED / "tflm" / "tflm_tree_cmsis_nn.tar.gz"}
BUILDS = (("host-64", "reference"), ("cortex-m4", "cmsis-nn"))


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def bench_libraries(cold: bool, opcodes: list[str] | None) -> None:
    what = "every kernel" if opcodes is None else f"the kernels of {', '.join(opcodes)}"
    print(f"TFLM library builds ({what})")
    for target, kernels in BUILDS:
        tree = locate_tree(TREES[kernels])
        cpu = ""
        if cold:
            with tempfile.TemporaryDirectory() as cache:
                os.environ["EDGE_CACHE_DIR"] = cache
                started, used = time.perf_counter(), children_cpu()
                fresh = build_library(tree, get_target(target), opcodes, progress=None)
                built = time.perf_counter() - started
                cpu = (f"   compilers {children_cpu() - used:6.0f} CPU s, "
                       f"{fresh.manifest()['files']} files")
                del os.environ["EDGE_CACHE_DIR"]
        started = time.perf_counter()
        library = build_library(tree, get_target(target), opcodes, progress=None)
        cached = time.perf_counter() - started
        if not cold:
            manifest = library.manifest()
            built = float(str(manifest["seconds"]))
            cpu = (f"   (when built: {manifest.get('compiled', '?')} of {manifest['files']} "
                   "files compiled, the rest were in the object store)")
        print(f"  {target:<10} {kernels:<9} built {built:7.1f} s   cached {cached:6.2f} s   "
              f"built / cached x{built / max(cached, 1e-6):,.0f}{cpu}")


def bench_verify(models: list[Path]) -> None:
    trees = [locate_tree(TREES["reference"]), locate_tree(TREES["cmsis-nn"])]
    board = get_board("nano33ble", kind="mcu")
    print("edge-export --verify (nano33ble: pip, host-64 reference, cortex-m4 CMSIS-NN in QEMU)")
    for path in models:
        with tempfile.TemporaryDirectory() as work:
            try:
                result = export_model(path, board, Path(work) / "fw")
            except BudgetError as e:
                print(f"  {path.name}: not exported for {board.name} ({e})")
                continue
            started = time.perf_counter()
            report = verify_export(result.model, result.model_path, result.out, board, trees,
                                   result.arena)
            seconds = time.perf_counter() - started
        print(f"  {path.name}: {seconds:.1f} s, {'ok' if report.ok else 'FAILED'}")
        for check in report.checks:
            if check.name == "minimal arena":
                v = check.values
                print(f"    {check.build:<24} predicted {v['predicted']:>9,}  real "
                      f"{v['measured']:>9,}  x{v['ratio']:.4f}  ({v.get('probes', '-')} probes)")
            if check.name == "instructions per inference" and "instructions" in check.values:
                print(f"    {check.build:<24} {check.values['instructions'] / 1e6:.1f} M "
                      "instructions per inference")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="time cold builds (minutes)")
    parser.add_argument("--all-kernels", action="store_true",
                        help="build every kernel of the tree, not only the models' operators")
    parser.add_argument("models", nargs="*", type=Path, help="models to verify")
    args = parser.parse_args(argv)
    missing = [p for p in (*TREES.values(), *(args.models or MODELS)) if not p.is_file()]
    if missing:
        print(f"bench_tflm: {missing[0]} not found", file=sys.stderr)
        return 2
    models = list(args.models or MODELS)
    opcodes = None if args.all_kernels else sorted(
        set().union(*(read_model(path).opcodes for path in models)))
    bench_libraries(args.cold, opcodes)
    bench_verify(models)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
