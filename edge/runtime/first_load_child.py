"""The child side of :mod:`edge.runtime.first_load` (``python -m edge.runtime.first_load_child``).

Reads one ``.npz`` request on stdin (``model`` bytes, ``backend`` name, ``run`` flag and
``input_N`` arrays), builds the interpreter, allocates, invokes (on zeros, or on each input)
and writes one JSON line on stdout. If the interpreter crashes, this process dies of the signal
and the parent reports it; everything the interpreter prints goes to stderr.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import numpy as np


def answer(request: Any) -> dict[str, Any]:
    from edge.errors import BackendError
    from edge.runtime.backends import load_backend
    from edge.runtime.interpreter import one_line

    try:
        backend = load_backend(str(request["backend"]))
    except BackendError as e:
        return {"ok": False, "missing": True, "error": str(e)}
    content = request["model"].tobytes()
    inputs = [request[f"input_{i}"] for i in range(len(request.files) - 3)]
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
            outputs.append(interpreter.get_tensor(target).reshape(-1).tolist())
        dtype = str(interpreter.get_output_details()[0]["dtype"].__name__) if outputs else ""
    except (ValueError, RuntimeError) as e:
        return {"ok": False, "backend": backend.name, "error": one_line(str(e))}
    return {"ok": True, "outputs": outputs, "dtype": dtype}


def main() -> int:
    with np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False) as request:
        reply = answer(request)
    sys.stdout.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
