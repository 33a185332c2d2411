"""The reference interpreters, each behind a process boundary: the pip ``tflite-micro`` package
and LiteRT. A crash, a timeout or a missing package becomes our error or a reason the outputs
were not compared; it never takes ``edge-export`` down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BackendError, VerifyError

HERE = Path(__file__).parent
PIP_CHILD = HERE / "pip_child.py"
LITERT_CHILD = HERE / "litert_child.py"
CHILD_TIMEOUT = 600.0


def call_child(script: Path, request: dict[str, Any], what: str,
               timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
    """Run one request in a fresh child process running ``script``.

    Raises:
        BackendError: the interpreter's package is not installed.
        VerifyError: the child crashed, timed out or reported a failure.
    """
    try:
        done = subprocess.run([sys.executable, str(script)], input=json.dumps(request),
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise VerifyError(f"{what} did not finish within {timeout:.0f} s on "
                          f"{request['model']}") from e
    if "No module named 'tflite_micro'" in done.stderr:
        raise BackendError("--verify needs the TFLite Micro interpreter: "
                           "pip install 'edge-labels[mcu]' (package tflite-micro)")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise VerifyError(f"{what} crashed on {request['model']} (exit code "
                          f"{done.returncode}): {last}")
    answer: dict[str, Any] = json.loads(done.stdout)
    if not answer.get("ok"):
        raise VerifyError(f"{what} refused {request['model']}: {answer.get('error')}")
    return answer


def pip_minimum(path: Path, guess: int, low: int = 0) -> int:
    """Bisect the smallest arena the pip interpreter accepts (one child process)."""
    answer = call_child(PIP_CHILD, {"op": "minimum", "model": str(path), "low": low,
                                    "high": guess}, "the pip TFLite Micro interpreter")
    return int(answer["minimum"])


def pip_outputs(path: Path, arena: int, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Output 0 of the pip interpreter for each input (flattened)."""
    answer = call_child(PIP_CHILD, {"op": "run", "model": str(path), "arena": arena,
                                    "inputs": [x.reshape(-1).tolist() for x in inputs]},
                        "the pip TFLite Micro interpreter")
    return [np.asarray(o) for o in answer["outputs"]]


def litert_outputs(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray] | str:
    """Output 0 of LiteRT for each input, or why LiteRT could not run the model."""
    request = {"model": str(path), "inputs": [x.reshape(-1).tolist() for x in inputs]}
    try:
        answer = call_child(LITERT_CHILD, request, "LiteRT")
    except VerifyError as e:
        return str(e)
    return [np.asarray(o) for o in answer["outputs"]]
