"""Runs the pip ``tflite-micro`` interpreter in a child process for ``edge-export --verify``
(TFLM may abort the process).

Reads one JSON request on stdin and writes one JSON answer on stdout:

* ``{"op": "minimum", "model": PATH, "low": N, "high": N}``: bisect the smallest arena in which
  the interpreter allocates its tensors (``low`` must fail or be 0, ``high`` must succeed).
* ``{"op": "run", "model": PATH, "arena": N, "inputs": [[...], ...]}``: allocate with ``arena``
  bytes and return the int output of each input (flattened).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _interpreter(model: bytes, arena: int) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=arena)


def _fits(model: bytes, arena: int) -> bool:
    """Whether ``arena`` bytes allocate, tried in a forked process: TFLM crashes (SIGSEGV) at
    some arenas that are too small (seen on rewritten models), which counts as "does not fit"."""
    from tflite_micro.python.tflite_micro import runtime  # noqa: F401 - imported once, before fork

    pid = os.fork()
    if pid == 0:
        try:
            _interpreter(model, arena)
        except RuntimeError:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def minimum(model: bytes, low: int, high: int) -> dict[str, Any]:
    while not _fits(model, high):
        if high > 1 << 30:
            return {"ok": False, "error": f"does not allocate even with {high} bytes"}
        low, high = high, high * 2
    if low > 0 and _fits(model, low):
        low = 0
    while high - low > 1:
        middle = (low + high) // 2
        if _fits(model, middle):
            high = middle
        else:
            low = middle
    return {"ok": True, "minimum": high}


def run(model: bytes, arena: int, inputs: list[list[int]]) -> dict[str, Any]:
    import numpy as np

    interpreter = _interpreter(model, arena)
    detail = interpreter.get_input_details(0)
    outputs = []
    for values in inputs:
        data = np.asarray(values, dtype=detail["dtype"]).reshape(detail["shape"])
        interpreter.set_input(data, 0)
        interpreter.invoke()
        outputs.append(np.asarray(interpreter.get_output(0)).reshape(-1).tolist())
    return {"ok": True, "outputs": outputs}


def main() -> int:
    request = json.load(sys.stdin)
    with open(request["model"], "rb") as f:
        model = f.read()
    # TFLM reports allocation failures on stderr; while bisecting they are expected.
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(2)
    os.dup2(devnull, 2)
    try:
        if request["op"] == "minimum":
            answer = minimum(model, int(request["low"]), int(request["high"]))
        else:
            answer = run(model, int(request["arena"]), request["inputs"])
    except RuntimeError as e:
        answer = {"ok": False, "error": str(e).splitlines()[0] if str(e) else repr(e)}
    finally:
        os.dup2(saved, 2)
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
