"""The host TFLite Micro backend (``--backend tflm``): the pip interpreter in a child process.

TFLM runs models that LiteRT refuses (``person_detect.tflite``'s single-scale depthwise
weights) and is what microcontrollers run, so a host run shows what the firmware will answer.
It aborts or segfaults its process on some bad models and inputs, so it never runs in ours:
:class:`TflmInterpreter` starts one long-lived child (:mod:`edge.runtime.tflm_child`, through
:mod:`edge.child`), builds the interpreter there once with the arena our planner predicts for the
pip package (:func:`firmware_export.plan.fit.pip_arena`: reference kernels, the package's own
struct layouts), and sends each frame's input over a pipe. A child that dies becomes an
:class:`~edge.errors.InterpreterError` naming the signal and TFLM's last message.

The object offers the subset of LiteRT's ``Interpreter`` that :class:`edge.runtime.Classifier`
uses (details, ``set_tensor``, ``invoke``, ``get_tensor``), so the classifier does not care
which one it holds.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.child import Child
from edge.errors import (
    BackendError,
    ChildCrashError,
    ChildError,
    ChildMissingError,
    ChildRefusedError,
    InterpreterError,
)
from edge.model.compat import micro_support
from edge.model.types import Model

log = logging.getLogger(__name__)

NAME = "tflm"
DISTRIBUTION = "tflite-micro"
INSTALL = "pip install 'edge-labels[mcu]'"
CHILD_MODULE = "edge.runtime.tflm_child"
WHAT = "TFLite Micro"
MAX_ARENA = 1 << 30
MAX_CRASHES = 40  # a bisection probes about 30 sizes


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

    _child: Child | None = None

    def __init__(self, model: Model, arena: int | None = None) -> None:
        tflm_version()
        self.name = _name(model)
        support = micro_support(model)  # refuse what TFLM would refuse, in our words
        if not support.runnable:
            raise InterpreterError(f"{self.name}: TFLite Micro cannot run it: {support.reason}")
        self.arena = planned_arena(model) if arena is None else arena
        self._planned = arena is None
        self._output: np.ndarray | None = None
        self._input: np.ndarray | None = None
        self.child_invoke_ms = 0.0
        try:
            self._child = Child(CHILD_MODULE, WHAT)
        except OSError as e:
            raise InterpreterError(f"cannot start the TFLite Micro process: {e}") from e
        try:
            details, _ = self._ask("load", {"arena": self.arena}, _model_array(model))
        except BaseException:
            self.close()
            raise
        self._inputs: list[dict[str, Any]] = details["inputs"]
        self._outputs: list[dict[str, Any]] = details["outputs"]
        log.info("%s: TFLite Micro child %s, arena %d bytes", self.name, self._child.pid,
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
        self._input = np.array(value)

    def invoke(self) -> None:
        if self._input is None:
            raise ValueError("set_tensor(0, ...) before invoke()")
        answer, outputs = self._ask("invoke", None, (self._input,))
        self.child_invoke_ms = float(answer["ms"])
        spec = self._outputs[0]
        self._output = outputs[0].astype(spec["dtype"], copy=False).reshape(spec["shape"])

    def get_tensor(self, index: int) -> np.ndarray:
        if self._output is None or index != 0:
            raise ValueError("only output 0 is available, after an invoke")
        return self._output

    def close(self) -> None:
        """End the child (kill it if it does not quit); safe to call twice."""
        child, self._child = self._child, None
        if child is not None:
            child.close()

    def __enter__(self) -> TflmInterpreter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _ask(self, op: str, header: dict[str, Any] | None, arrays: Sequence[np.ndarray]
             ) -> tuple[dict[str, Any], list[np.ndarray]]:
        if self._child is None:
            raise InterpreterError(f"{self.name}: the TFLite Micro process is closed")
        try:
            return self._child.ask(op, header, arrays)
        except ChildRefusedError as e:
            last = self._child.last_words(2)
            hint = ""
            if op == "load" and "missing:" in last and self._planned:
                hint = (f"; the planned arena of {self.arena} bytes is too small: please report "
                        "this model")
            raise InterpreterError(f"{self.name}: TFLite Micro failed to {op} it: {e}"
                                   + (f" ({last})" if last else "") + hint) from None
        except ChildMissingError as e:
            raise BackendError(f"--backend {NAME} needs the TFLite Micro interpreter "
                               f"({DISTRIBUTION}); install it with `{INSTALL}` ({e})") from None
        except ChildCrashError as e:
            self._child = None
            raise InterpreterError(f"{self.name}: TFLite Micro {e.how} during {op}"
                                   + (f": {e.last}" if e.last else "")
                                   + "; the model or its input is not one TFLM can run") from None


def minimum_arena(model: Model, high: int, low: int = 0) -> int:
    """The smallest arena the pip interpreter allocates ``model`` in, bisected.

    Each size is one request to a child; a child that crashes at a size (too small an arena can
    make TFLM segfault) counts as "does not fit" there and a new child goes on, so a crash is
    never the answer about the model.

    Args:
        high: an arena that should allocate (doubled until one does).
        low: an arena known not to allocate, or 0.

    Raises:
        BackendError: tflite-micro is not installed.
        InterpreterError: TFLM allocates the model in no arena up to 1 GiB, or keeps crashing.
    """
    probe = _ArenaProbe(model)
    try:
        high = max(1, high)
        while not probe.fits(high):
            if high > MAX_ARENA:
                raise InterpreterError(f"{_name(model)}: TFLite Micro does not allocate it even "
                                       f"with {high:,} bytes")
            low, high = high, high * 2
        if low > 0 and probe.fits(low):
            low = 0
        while high - low > 1:
            middle = (low + high) // 2
            if probe.fits(middle):
                high = middle
            else:
                low = middle
    finally:
        probe.close()
    return high


class _ArenaProbe:
    """Asks a child whether an arena fits, replacing the child when one crashes."""

    def __init__(self, model: Model) -> None:
        self.model, self.name = _model_array(model), _name(model)
        self.child: Child | None = None
        self.crashes: list[str] = []

    def fits(self, arena: int) -> bool:
        try:
            if self.child is None:
                self.child = Child(CHILD_MODULE, WHAT)
            answer, _ = self.child.ask("fits", {"arena": arena}, self.model)
        except ChildMissingError as e:
            raise BackendError(f"the TFLite Micro interpreter ({DISTRIBUTION}) is missing; "
                               f"install it with `{INSTALL}` ({e})") from None
        except ChildCrashError as e:
            self.close()
            self.crashes.append(f"{arena:,} B: {e}")
            log.debug("%s: TFLite Micro crashed at an arena of %d bytes: %s", self.name, arena, e)
            if len(self.crashes) > MAX_CRASHES:
                raise InterpreterError(f"{self.name}: TFLite Micro crashed at {len(self.crashes)} "
                                       f"arena sizes while bisecting; the last: "
                                       f"{self.crashes[-1]}") from None
            return False
        except (ChildError, OSError) as e:
            raise InterpreterError(f"{self.name}: {e} while bisecting the arena") from None
        return bool(answer["fits"])

    def close(self) -> None:
        child, self.child = self.child, None
        if child is not None:
            child.close()


def _model_array(model: Model) -> tuple[np.ndarray]:
    return (np.frombuffer(model.content, np.uint8),)


def _litert_details(index: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {"index": index, "dtype": np.dtype(spec["dtype"]).type,
            "shape": np.asarray(spec["shape"], np.int32),
            "quantization": (spec["scale"], spec["zero_point"])}


def _name(model: Model) -> str:
    return Path(model.source).name if model.source != "<bytes>" else "the model"
