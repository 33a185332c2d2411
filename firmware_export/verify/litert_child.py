"""Runs LiteRT in a child process for ``edge-export --verify`` (LiteRT may crash on a model).

Reads one JSON request on stdin, ``{"model": PATH, "inputs": [[...], ...]}``, and writes
``{"ok": true, "outputs": [[...], ...]}`` (output 0 of each input, flattened) or
``{"ok": false, "error": "..."}`` on stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def run(model: bytes, inputs: list[list[float]]) -> dict[str, Any]:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    target = interpreter.get_output_details()[0]["index"]
    outputs = []
    for values in inputs:
        data = np.asarray(values, dtype=source["dtype"]).reshape(source["shape"])
        interpreter.set_tensor(source["index"], data)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target).reshape(-1).tolist())
    return {"ok": True, "outputs": outputs}


def main() -> int:
    request = json.load(sys.stdin)
    with open(request["model"], "rb") as f:
        model = f.read()
    try:
        answer = run(model, request["inputs"])
    except (ValueError, RuntimeError) as e:
        first = (str(e).splitlines() or [repr(e)])[0]
        answer = {"ok": False, "error": first.split(".")[0][:200]}
    except ImportError as e:
        answer = {"ok": False, "error": f"ai-edge-litert is not installed ({e})"}
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
