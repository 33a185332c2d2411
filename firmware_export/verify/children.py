"""The reference interpreters of ``edge-export --verify``: the pip ``tflite-micro`` package and
LiteRT, each in a child process through :mod:`edge.child` (via :mod:`edge.runtime.tflm` and
:mod:`edge.runtime.first_load`). A crash, a timeout or a refusal becomes a :class:`VerifyError`
naming it, or a reason the outputs were not compared; it never takes ``edge-export`` down."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import BackendError, InterpreterError, VerifyError
from edge.model import read_model
from edge.runtime.first_load import run_model
from edge.runtime.tflm import TflmInterpreter, minimum_arena


def pip_minimum(path: Path, guess: int, low: int = 0) -> int:
    """Bisect the smallest arena the pip interpreter accepts (one child process).

    Raises:
        BackendError: tflite-micro is not installed.
        VerifyError: the child crashed, or the interpreter refused the model at every size.
    """
    try:
        return minimum_arena(read_model(path), guess, low)
    except InterpreterError as e:
        raise VerifyError(str(e)) from None


def pip_outputs(path: Path, arena: int, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Output 0 of the pip interpreter for each input (flattened), in one child process.

    Raises:
        BackendError: tflite-micro is not installed.
        VerifyError: the child crashed, or the interpreter refused the model or an input.
    """
    outputs = []
    try:
        with TflmInterpreter(read_model(path), arena) as interpreter:
            for x in inputs:
                interpreter.set_tensor(0, x)
                interpreter.invoke()
                outputs.append(interpreter.get_tensor(0).reshape(-1).copy())
    except InterpreterError as e:
        raise VerifyError(str(e)) from None
    return outputs


def litert_outputs(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray] | str:
    """Output 0 of LiteRT for each input (flattened), or why LiteRT could not run the model."""
    try:
        return run_model(path.read_bytes(), path.name, inputs)
    except (InterpreterError, BackendError, OSError) as e:
        return str(e)
