"""The child side of :mod:`edge.runtime.first_load` (``python -m edge.runtime.first_load_child``).

Served through :mod:`edge.child`. Both requests carry the ``backend`` package's name and the
model's bytes as the first array:

* ``load``: build the interpreter, allocate its tensors and invoke once on zeros;
* ``run``: the same, then output 0 of each further array, given as input 0.

If the interpreter crashes, this process dies of the signal and the parent reports it.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from edge.child import Arrays, serve


def load(header: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict[str, Any], Arrays]:
    """Build, allocate and invoke once on zeros (``run`` when inputs follow the model)."""
    from edge.runtime.backends import load_backend
    from edge.runtime.interpreter import one_line

    backend = load_backend(str(header["backend"]))
    content, inputs = arrays[0].tobytes(), arrays[1:]
    try:
        interpreter = backend.interpreter_class(model_content=content, num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()
        target = interpreter.get_output_details()[0]["index"]
        outputs = []
        if not inputs:
            for d in detail:
                interpreter.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
            interpreter.invoke()
        for x in inputs:
            interpreter.set_tensor(detail[0]["index"], x)
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(target).reshape(-1).copy())
    except (ValueError, RuntimeError) as e:
        raise RuntimeError(one_line(str(e))) from None
    return {}, outputs


def main() -> int:
    return serve({"load": load, "run": load})


if __name__ == "__main__":
    sys.exit(main())
