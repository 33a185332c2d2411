"""``edge-export --verify``: the prediction against the real TFLite Micro, in a child process.

The pip ``tflite-micro`` package is a 64-bit x86 host build with reference kernels, so the plan
it is compared with is the one for pointer size 8 and reference kernels. TFLM aborts the whole
process on some bad models, so it only ever runs in a child (``_tflm_child.py``), and only after
the model passed our reader and LiteRT's flatbuffer verifier.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BackendError, VerifyError
from edge.model.types import Model
from firmware_export.plan.arena import ArenaPlan, plan_arena

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("_tflm_child.py")
CHILD_TIMEOUT = 600.0
MAX_LSB = 2


@dataclass(frozen=True)
class Agreement:
    """TFLM and LiteRT on the same inputs."""

    inputs: int
    top1_identical: bool
    max_lsb: int
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.note != "" or (self.top1_identical and self.max_lsb <= MAX_LSB)


@dataclass(frozen=True)
class VerifyReport:
    predicted: int  # predicted minimum (64-bit, reference kernels)
    arena_size: int  # kTensorArenaSize for the host build
    measured: int  # bisected minimum on the real TFLM
    agreement: Agreement | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def error(self) -> float:
        """Relative error of the prediction (positive = over-estimate)."""
        return (self.predicted - self.measured) / self.measured

    def to_dict(self) -> dict[str, Any]:
        agree = self.agreement
        return {"predicted": self.predicted, "arena_size": self.arena_size,
                "measured": self.measured, "error": round(self.error, 5),
                "outputs": None if agree is None else {
                    "inputs": agree.inputs, "top1_identical": agree.top1_identical,
                    "max_lsb": agree.max_lsb, "note": agree.note}}


def call_child(request: dict[str, Any], timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
    """Run one request in a fresh TFLM child process.

    Raises:
        BackendError: tflite-micro is not installed.
        VerifyError: the child crashed, timed out or reported a failure.
    """
    try:
        done = subprocess.run([sys.executable, str(CHILD)], input=json.dumps(request),
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise VerifyError(f"TFLite Micro did not finish within {timeout:.0f} s") from e
    if "No module named 'tflite_micro'" in done.stderr:
        raise BackendError("--verify needs the TFLite Micro interpreter: "
                           "pip install 'edge-labels[mcu]' (package tflite-micro)")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise VerifyError(f"TFLite Micro crashed on {request['model']} (exit code "
                          f"{done.returncode}): {last}")
    answer: dict[str, Any] = json.loads(done.stdout)
    if not answer.get("ok"):
        raise VerifyError(f"TFLite Micro refused {request['model']}: {answer.get('error')}")
    return answer


def check_with_litert(content: bytes) -> str:
    """Run LiteRT's flatbuffer verifier; return '' or why LiteRT itself cannot run the model.

    Raises:
        VerifyError: the flatbuffer is invalid (TFLM must not see it).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise BackendError("--verify needs ai-edge-litert: pip install ai-edge-litert") from e
    try:
        interpreter = Interpreter(model_content=content)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        first = str(e).split(".")[0]
        if "not a valid Flatbuffer" in str(e):
            raise VerifyError(f"LiteRT's verifier rejects the model: {first}") from e
        return f"LiteRT cannot run this model ({first}); outputs not compared"
    return ""


def measure_minimum(path: Path, guess: int, low: int = 0) -> int:
    """Bisect the smallest arena the real TFLM accepts (one child process)."""
    answer = call_child({"op": "minimum", "model": str(path), "low": low, "high": guess})
    return int(answer["minimum"])


def sample_inputs(model: Model, count: int = 3, seed: int = 0) -> list[np.ndarray]:
    tensor = model.input_tensors[0]
    info = np.iinfo(tensor.dtype) if tensor.dtype in ("int8", "uint8", "int16") else None
    rng = np.random.default_rng(seed)
    if info is None:
        return [rng.uniform(-1, 1, tensor.shape).astype(tensor.dtype) for _ in range(count)]
    return [rng.integers(info.min, info.max + 1, tensor.shape).astype(tensor.dtype)
            for _ in range(count)]


def compare_outputs(model: Model, path: Path, arena: int, note: str) -> Agreement:
    inputs = sample_inputs(model)
    if note:
        return Agreement(len(inputs), False, 0, note)
    answer = call_child({"op": "run", "model": str(path), "arena": arena,
                         "inputs": [x.reshape(-1).tolist() for x in inputs]})
    tflm = [np.asarray(o) for o in answer["outputs"]]
    litert = _run_litert(model.content, inputs)
    top1 = all(int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(tflm, litert, strict=True))
    lsb = max(int(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64))))
              for a, b in zip(tflm, litert, strict=True))
    return Agreement(len(inputs), top1, lsb)


def _run_litert(content: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    outputs = []
    for x in inputs:
        interpreter.set_tensor(source, x)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target).reshape(-1).copy())
    return outputs


def verify(model: Model, path: Path, host: ArenaPlan | None = None) -> VerifyReport:
    """Predict (64-bit, reference kernels), measure the true minimum, compare outputs.

    Raises:
        VerifyError: LiteRT's verifier rejects the file, TFLM crashes, or the real minimum is
            larger than ``kTensorArenaSize`` for the host build.
    """
    note = check_with_litert(model.content)
    host = host or plan_arena(model, pointer_size=8, kernels="reference")
    measured = measure_minimum(path, host.size, low=host.plan.head)
    log.info("predicted %d B, measured %d B", host.minimum, measured)
    if measured > host.size:
        raise VerifyError(f"TFLite Micro needs {measured} bytes but the plan predicted "
                          f"{host.minimum} (+{host.margin} margin); please report this model")
    agreement = compare_outputs(model, path, host.size, note)
    return VerifyReport(host.minimum, host.size, measured, agreement)
