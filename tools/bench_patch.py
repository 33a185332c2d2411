"""Benchmark patch-based inference: search time, arenas, MAC overhead and invoke time.

    PYTHONPATH=. python tools/bench_patch.py [MODEL ...] [--board nano33ble] [--json]

For each model: ``--patch auto`` as edge-export runs it (offline plan included) for the pip
``tflite-micro`` interpreter and for ``--board``'s ABI; the pip interpreter's real minimal arena
(bisected in a child, as ``--verify`` does) of the untiled and the tiled model, each with the
offline plan edge-export writes; outputs compared byte for byte; invoke time of both on the pip
interpreter, measured alternately in the same run (a ratio: the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.boards import get_board  # noqa: E402
from edge.model import Model, read_model  # noqa: E402
from firmware_export.plan.fit import apply_offline_plan, patch_model, pip_arena  # noqa: E402
from firmware_export.verify.children import pip_minimum, pip_outputs  # noqa: E402
from firmware_export.verify.ladder import sample_inputs  # noqa: E402

DEFAULT_MODELS = (ROOT.parent / "shared/data/models/tf2_mobilenet_v2_1.0_224_ptq.tflite",
                  ROOT.parent / "shared/data/models/person_detect.tflite",
                  ROOT / "edge/demo/demo_model.tflite")


def _shipped(model: Model, folder: Path, name: str) -> tuple[Path, int]:
    """The model with edge-export's offline plan, written out; its predicted minimum."""
    planned, _ = apply_offline_plan(model, "reference", "auto")
    path = folder / name
    path.write_bytes(planned.content)
    return path, pip_arena(planned).minimum


def _invoke_seconds(path: Path, arena: int, inputs: list[np.ndarray]) -> float:
    started = time.perf_counter()
    pip_outputs(path, arena, inputs)
    return time.perf_counter() - started


def bench(path: Path, board: str, runs: int) -> dict[str, Any]:
    model = read_model(path)
    started = time.perf_counter()
    patched, choice = patch_model(model, "auto")
    search = time.perf_counter() - started
    row: dict[str, Any] = {"model": path.name, "search_seconds": round(search, 1)}
    if choice is None:
        return {**row, "patch": None}
    row["patch"] = choice.to_dict()
    _, on_board = patch_model(model, "auto", get_board(board, kind="mcu"))
    row["board"] = {"name": board, **(on_board.to_dict() if on_board else {})}
    with tempfile.TemporaryDirectory() as tmp:
        before_path, before_predicted = _shipped(model, Path(tmp), "before.tflite")
        after_path, after_predicted = _shipped(patched, Path(tmp), "after.tflite")
        before = pip_minimum(before_path, before_predicted + 4096)
        after = pip_minimum(after_path, after_predicted + 4096)
        inputs = sample_inputs(model)[:3]
        same = all(np.array_equal(a, b) for a, b in zip(
            pip_outputs(before_path, before + 256, inputs),
            pip_outputs(after_path, after + 256, inputs), strict=True))
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(runs):  # alternate so both see the same load
            times["before"].append(_invoke_seconds(before_path, before + 256, inputs))
            times["after"].append(_invoke_seconds(after_path, after + 256, inputs))
    row.update({
        "real_minimum_before": before, "real_minimum_after": after,
        "real_ratio": round(after / before, 4),
        "predicted_over_real": round(after_predicted / after, 5),
        "outputs_identical": same,
        "invoke_ratio": round(min(times["after"]) / min(times["before"]), 3),
    })
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, default=list(DEFAULT_MODELS))
    parser.add_argument("--board", default="nano33ble")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [bench(p, args.board, args.runs) for p in args.models if p.is_file()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        patch = row["patch"]
        if patch is None:
            print(f"{row['model']}: no grid helps ({row['search_seconds']} s)")
            continue
        board = row["board"]
        print(f"{row['model']}: {patch['grid']} over ops {patch['operators']}, MAC overhead "
              f"{patch['mac_overhead']:+.1%}, search {row['search_seconds']} s")
        print(f"  pip real minimum {row['real_minimum_before']:,} -> "
              f"{row['real_minimum_after']:,} B ({row['real_ratio']:.3f}x), predicted/real "
              f"{row['predicted_over_real']}, outputs identical: {row['outputs_identical']}, "
              f"invoke time {row['invoke_ratio']:.2f}x (load included)")
        if "arena_before" in board:
            print(f"  {board['name']}: predicted {board['arena_before']:,} -> "
                  f"{board['arena_after']:,} B ({board['ratio']:.3f}x), grid {board['grid']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
