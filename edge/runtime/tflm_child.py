"""The pip ``tflite-micro`` interpreter's child process (``python -m edge.runtime.tflm_child``).

Run through :mod:`edge.child` (TFLM aborts or segfaults its process on some models and inputs),
long-lived by ``--backend tflm`` and one-shot by ``edge-export --verify``. Requests:

* ``load`` (``arena``; the model's bytes as a uint8 array) -> ``inputs`` and ``outputs``: the
  ``dtype``, ``shape``, ``scale`` and ``zero_point`` of each tensor;
* ``invoke`` (the input tensor) -> ``ms``, the invoke's duration measured here (what the
  process boundary adds is the rest), and output 0;
* ``fits`` (``arena``; the model's bytes) -> ``fits``: whether the interpreter allocates its
  tensors in that arena, tried in a fork: too small an arena can make TFLM segfault, which
  counts as "does not fit".

An exception of the interpreter is answered as a refusal and the child stays ready.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from edge.child import Arrays, serve


def _describe(details: dict[str, Any]) -> dict[str, Any]:
    quant = details.get("quantization_parameters") or {}
    scales = list(quant.get("scales", []))
    zero_points = list(quant.get("zero_points", []))
    return {"dtype": details["dtype"].__name__, "shape": [int(d) for d in details["shape"]],
            "scale": float(scales[0]) if scales else 0.0,
            "zero_point": int(zero_points[0]) if zero_points else 0}


def _interpreter(model: np.ndarray, arena: int) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model.tobytes(), arena_size=arena)


def _fits(model: np.ndarray, arena: int) -> bool:
    try:
        _interpreter(model, arena)
    except RuntimeError:
        return False
    return True


class Server:
    """Holds the interpreter between requests."""

    def __init__(self) -> None:
        self.interpreter: Any = None
        self.input: dict[str, Any] = {}

    def load(self, header: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict[str, Any],
                                                                               Arrays]:
        self.interpreter = None
        self.interpreter = _interpreter(arrays[0], int(header["arena"]))
        inputs = self._all(self.interpreter.get_input_details)
        outputs = self._all(self.interpreter.get_output_details)
        self.input = inputs[0]
        return {"inputs": inputs, "outputs": outputs}, ()

    def invoke(self, header: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict[str, Any],
                                                                                 Arrays]:
        if self.interpreter is None:
            raise RuntimeError("no model loaded")
        data = arrays[0]
        if data.dtype != np.dtype(self.input["dtype"]) or list(data.shape) != self.input["shape"]:
            raise ValueError(f"input must be {self.input['dtype']} {self.input['shape']}, got "
                             f"{data.dtype} {list(data.shape)}")
        self.interpreter.set_input(data, 0)
        start = time.perf_counter()
        self.interpreter.invoke()
        elapsed_ms = (time.perf_counter() - start) * 1e3
        return {"ms": elapsed_ms}, (np.asarray(self.interpreter.get_output(0)),)

    @staticmethod
    def _all(details: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            try:
                found.append(_describe(details(len(found))))
            except (IndexError, RuntimeError, ValueError):
                return found


def fits(header: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict[str, Any], Arrays]:
    """Whether the interpreter allocates the model's tensors in ``arena`` bytes.

    Tried in a forked process: TFLM segfaults at some arenas that are too small, which counts
    as "does not fit" without costing this child (the parent's restart is the backstop).
    """
    from tflite_micro.python.tflite_micro import runtime  # noqa: F401 - imported once, before fork

    pid = os.fork()
    if pid == 0:
        os._exit(0 if _fits(arrays[0], int(header["arena"])) else 1)
    _, status = os.waitpid(pid, 0)
    return {"fits": os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0}, ()


def main() -> int:
    server = Server()
    return serve({"load": server.load, "invoke": server.invoke, "fits": fits})


if __name__ == "__main__":
    sys.exit(main())
