"""What the process boundary of ``--backend tflm`` costs per frame.

    PYTHONPATH=. python tools/bench_classify_tflm.py [--model M] [--runs N]

Each run is one ``Classifier.run`` through the TFLite Micro child (set_tensor, the pipe both
ways, invoke, get_tensor, dequantize), timed in this process, and the same invoke timed inside
the child around ``interpreter.invoke()`` alone. Both numbers come from the same frames on the
same machine load, so their difference is what the boundary adds: a few hundred microseconds
when a core is free, more on a busy machine where the other process waits to be scheduled. The
interpreter is built once; the child is checked to be the same one at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.demo import model_path  # noqa: E402
from edge.demo.scene import DemoScene  # noqa: E402
from edge.runtime import Classifier  # noqa: E402
from edge.runtime.tflm import TflmInterpreter  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(model_path()), help="a .tflite classifier "
                        "(default: the bundled demo model)")
    parser.add_argument("--runs", type=int, default=50, help="frames to time (default 50)")
    args = parser.parse_args(argv)
    with Classifier.open(args.model, backend="tflm") as clf:
        interpreter = clf._interpreter
        assert isinstance(interpreter, TflmInterpreter)
        child = interpreter._child
        scene = DemoScene(seed=1, hold_frames=1)
        tensors = [clf.preprocess(scene.next_frame()[0]).copy() for _ in range(args.runs)]
        clf.run(tensors[0])  # warm-up
        outside, inside = [], []
        for tensor in tensors:
            start = time.perf_counter()
            clf.run(tensor)
            outside.append((time.perf_counter() - start) * 1e3)
            inside.append(interpreter.child_invoke_ms)
        assert interpreter._child is child, "the child was restarted"
        arena = interpreter.arena
    out_median, in_median = statistics.median(outside), statistics.median(inside)
    print(f"{Path(args.model).name}: arena {arena} B, {args.runs} frames, one child process")
    print(f"  Classifier.run through the child: median {out_median:.3f} ms, "
          f"min {min(outside):.3f} ms")
    print(f"  invoke inside the child:          median {in_median:.3f} ms, "
          f"min {min(inside):.3f} ms")
    extra = [o - i for o, i in zip(outside, inside, strict=True)]
    print(f"  ratio of medians {out_median / in_median:.3f}; boundary + wrapper per frame: "
          f"median {statistics.median(extra):.3f} ms, min {min(extra):.3f} ms (on a busy "
          "machine the median includes waiting for a core to schedule the other process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
