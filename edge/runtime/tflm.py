"""The host TFLite Micro backend (``--backend tflm``): the pip interpreter in a child process.

TFLM runs models that LiteRT refuses (``person_detect.tflite``'s single-scale depthwise
weights) and is what microcontrollers run, so a host run shows what the firmware will answer.
It aborts or segfaults its process on some bad models and inputs, so it never runs in ours:
:class:`TflmInterpreter` starts one long-lived child (:mod:`edge.runtime.tflm_server`), builds
the interpreter there once with the arena our planner predicts for the pip package
(:func:`firmware_export.plan.fit.pip_arena`: reference kernels, the package's own struct
layouts), and sends each frame's input over a pipe. A child that dies becomes an
:class:`~edge.errors.InterpreterError` naming the signal and TFLM's last message.

The object offers the subset of LiteRT's ``Interpreter`` that :class:`edge.runtime.Classifier`
uses (details, ``set_tensor``, ``invoke``, ``get_tensor``), so the classifier does not care
which one it holds.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from edge.errors import BackendError, InterpreterError
from edge.model.compat import micro_support
from edge.model.types import Model
from edge.runtime import tflm_server as protocol

log = logging.getLogger(__name__)

NAME = "tflm"
DISTRIBUTION = "tflite-micro"
INSTALL = "pip install 'edge-labels[mcu]'"
SERVER = Path(protocol.__file__)
STDERR_TAIL = 4096
CLOSE_TIMEOUT_S = 5.0


def tflm_version() -> str:
    """The installed tflite-micro version, checked without importing it.

    Raises:
        BackendError: the package is not installed (the message says how to install it).
    """
    if importlib.util.find_spec("tflite_micro") is None:
        raise BackendError(f"--backend {NAME} needs the TFLite Micro interpreter "
                           f"({DISTRIBUTION}); install it with `{INSTALL}`")
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "(unknown version)"


def planned_arena(model: Model) -> int:
    """``kTensorArenaSize`` for the pip package (its ABI, reference kernels)."""
    from firmware_export.plan.fit import pip_arena

    try:
        return pip_arena(model).size
    except ValueError as e:
        raise InterpreterError(f"{_name(model)}: cannot plan a TFLite Micro arena: {e}") from e


class TflmInterpreter:
    """One TFLM interpreter in a child process, built once, invoked frame after frame.

    Args:
        model: the validated model.
        arena: arena bytes; None uses :func:`planned_arena`.

    Attributes:
        arena: the arena size TFLM was given.
        child_invoke_ms: the last invoke's duration measured inside the child (what an
            invoke costs without the process boundary).

    Raises:
        BackendError: tflite-micro is not installed.
        InterpreterError: the child could not start, or TFLM refused (or crashed on) the model.
    """

    _child: subprocess.Popen[bytes] | None = None
    _stderr: IO[bytes] | None = None

    def __init__(self, model: Model, arena: int | None = None) -> None:
        tflm_version()
        self.name = _name(model)
        support = micro_support(model)  # refuse what TFLM would refuse, in our words
        if not support.runnable:
            raise InterpreterError(f"{self.name}: TFLite Micro cannot run it: {support.reason}")
        self.arena = planned_arena(model) if arena is None else arena
        self._planned = arena is None
        self._output: np.ndarray | None = None
        self._input = b""
        self.child_invoke_ms = 0.0
        self._stderr = tempfile.TemporaryFile()  # unlinked: nothing is left behind
        try:
            self._child = subprocess.Popen([sys.executable, str(SERVER)],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=self._stderr)
            details = json.loads(self._request(b"L", protocol.ARENA.pack(self.arena)
                                               + model.content, "load"))
        except OSError as e:
            self.close()
            raise InterpreterError(f"cannot start the TFLite Micro process: {e}") from e
        except BaseException:
            self.close()
            raise
        self._inputs: list[dict[str, Any]] = details["inputs"]
        self._outputs: list[dict[str, Any]] = details["outputs"]
        log.info("%s: TFLite Micro child %d, arena %d bytes", self.name, self._child.pid,
                 self.arena)

    def get_input_details(self) -> list[dict[str, Any]]:
        return [_litert_details(i, d) for i, d in enumerate(self._inputs)]

    def get_output_details(self) -> list[dict[str, Any]]:
        return [_litert_details(i, d) for i, d in enumerate(self._outputs)]

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        """Keep the input for the next :meth:`invoke` (only input 0 exists)."""
        spec = self._inputs[index]
        if value.dtype != np.dtype(spec["dtype"]) or list(value.shape) != spec["shape"]:
            raise ValueError(f"input must be {spec['dtype']} {spec['shape']}, got "
                             f"{value.dtype} {list(value.shape)}")
        self._input = np.ascontiguousarray(value).tobytes()

    def invoke(self) -> None:
        answer = self._request(b"I", self._input, "invoke")
        (self.child_invoke_ms,) = protocol.MILLISECONDS.unpack_from(answer)
        spec = self._outputs[0]
        self._output = np.frombuffer(answer, dtype=spec["dtype"],
                                     offset=protocol.MILLISECONDS.size).reshape(spec["shape"])

    def get_tensor(self, index: int) -> np.ndarray:
        if self._output is None or index != 0:
            raise ValueError("only output 0 is available, after an invoke")
        return self._output

    def close(self) -> None:
        """Ask the child to exit (kill it if it does not); safe to call twice."""
        child, self._child = self._child, None
        if child is not None:
            try:
                if child.stdin is not None:
                    protocol.write_message(child.stdin, b"Q")
            except OSError:
                pass
            _reap(child)
        stderr, self._stderr = self._stderr, None
        if stderr is not None:
            stderr.close()

    def __del__(self) -> None:
        self.close()

    def _request(self, kind: bytes, payload: bytes, what: str) -> bytes:
        child = self._child
        if (child is None or child.stdin is None or child.stdout is None
                or self._stderr is None):
            raise InterpreterError(f"{self.name}: the TFLite Micro process is closed")
        mark = self._stderr.seek(0, 2)
        try:
            protocol.write_message(child.stdin, kind, payload)
            message = protocol.read_message(child.stdout)
        except OSError:
            message = None
        if message is None:
            raise InterpreterError(self._crash_message(what, mark))
        answer_kind, answer = message
        if answer_kind == b"E":
            detail = answer.decode("utf-8", "replace")
            last = self._last_words(mark)
            hint = ""
            if what == "load" and "missing:" in last and self._planned:
                hint = (f"; the planned arena of {self.arena} bytes is too small: please report "
                        "this model")
            raise InterpreterError(f"{self.name}: TFLite Micro failed to {what} it: {detail}"
                                   + (f" ({last})" if last else "") + hint)
        return answer

    def _crash_message(self, what: str, mark: int) -> str:
        child, self._child = self._child, None
        code = _reap(child) if child is not None else None
        if code is not None and code < 0:
            how = f"crashed ({_signal_name(-code)})"
        else:
            how = f"exited (code {code})"
        last = self._last_words(mark)
        return (f"{self.name}: TFLite Micro {how} during {what}" + (f": {last}" if last else "")
                + "; the model or its input is not one TFLM can run")

    def _last_words(self, mark: int) -> str:
        """The last lines TFLM wrote to stderr since offset ``mark`` (its reason), or ''."""
        stderr = self._stderr
        if stderr is None:
            return ""
        size = stderr.seek(0, 2)
        stderr.seek(max(mark, size - STDERR_TAIL))
        lines = [line.strip() for line in stderr.read().decode("utf-8", "replace").splitlines()
                 if line.strip()]
        useful = [line for line in lines if not line.startswith(("Traceback", "File "))
                  and line.strip("^~ ")]
        return " ".join(useful[-2:])


def _reap(child: subprocess.Popen[bytes]) -> int:
    """Close the child's pipes and wait for it (killing it after a grace period)."""
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
    try:
        return child.wait(CLOSE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def _litert_details(index: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "dtype": np.dtype(spec["dtype"]).type,
            "shape": np.asarray(spec["shape"], np.int32),
            "quantization": (spec["scale"], spec["zero_point"])}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _name(model: Model) -> str:
    return Path(model.source).name if model.source != "<bytes>" else "the model"
