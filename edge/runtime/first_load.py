"""The first load of a model not seen before happens in a child process.

:mod:`edge.model.semantics` refuses the wrong models it knows about; this is the defence that
does not depend on that list being complete. Before an interpreter in edge's own process sees a
model, a child process builds the same interpreter package's interpreter on it, allocates its
tensors and invokes it once on zeros. A crash there (segfault, abort, a signal of any kind)
becomes one line, ``LiteRT crashed while loading MODEL: SIGSEGV ...``, and the command exits 2.
Success is remembered by the model's SHA-256 (with the package and its version) in
``$EDGE_CACHE_DIR/loaded`` (default ``~/.cache/edge/loaded``), so a known model costs nothing.

Callers: :meth:`edge.runtime.Classifier.open` (edge-classify, edge-run). Other code that must
not run LiteRT in its own process (``edge-export --verify``) calls :func:`load_in_child` to check
a model and :func:`run_model` to get LiteRT's outputs for some inputs, both in a child.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BackendError, InterpreterError
from edge.outputs import atomic_write_text

log = logging.getLogger(__name__)

CHILD_MODULE = "edge.runtime.first_load_child"
TIMEOUT_S = 300.0
CACHE_ENV = "EDGE_CACHE_DIR"
LABELS = {"ai-edge-litert": "LiteRT", "tflite-runtime": "tflite-runtime",
          "tensorflow": "TensorFlow Lite"}


def cache_dir() -> Path:
    """Where successful first loads are remembered: ``$EDGE_CACHE_DIR/loaded`` or ~/.cache/edge."""
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edge")
    return Path(base) / "loaded"


def loaded_key(content: bytes, backend: str, version: str) -> str:
    digest = hashlib.sha256(content)
    digest.update(f"\0{backend}\0{version}".encode())
    return digest.hexdigest()


def load_in_child(content: bytes, name: str, backend: str = "ai-edge-litert",
                version: str = "") -> bool:
    """Load, allocate and invoke the model once in a child, unless that already succeeded.

    Args:
        content: the model's bytes (already read and checked by :func:`edge.model.read_model`).
        name: the model's file name, for messages.
        backend: the interpreter package, as in :data:`edge.runtime.backends.PACKAGES`.
        version: its version, part of the cache key.

    Returns:
        True when the child ran (the model was new), False when the cache knew it.

    Raises:
        InterpreterError: the child crashed, hung, or the interpreter refused the model.
        BackendError: the interpreter package cannot be imported in the child.
    """
    marker = cache_dir() / loaded_key(content, backend, version)
    if marker.is_file():
        return False
    _call(content, name, backend, None)
    _remember(marker, name, backend, version)
    return True


def run_model(content: bytes, name: str, inputs: list[np.ndarray],
              backend: str = "ai-edge-litert") -> list[np.ndarray]:
    """The model's first output for each input, computed by ``backend`` in a child process.

    Raises:
        InterpreterError: the child crashed, hung, or the interpreter refused the model.
        BackendError: the interpreter package cannot be imported in the child.
    """
    return _call(content, name, backend, inputs)


def _call(content: bytes, name: str, backend: str, inputs: list[np.ndarray] | None
          ) -> list[np.ndarray]:
    request = io.BytesIO()
    arrays: dict[str, Any] = {f"input_{i}": x for i, x in enumerate(inputs or [])}
    arrays.update(model=np.frombuffer(content, dtype=np.uint8), backend=np.array(backend),
                  run=np.array(inputs is not None))
    np.savez(request, **arrays)
    label = LABELS.get(backend, backend)
    log.debug("loading %s with %s in a child process", name, label)
    try:
        done = subprocess.run([sys.executable, "-m", CHILD_MODULE], input=request.getvalue(),
                              capture_output=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as e:
        raise InterpreterError(f"{label} did not finish loading {name} within "
                               f"{TIMEOUT_S:.0f} s; the model is damaged or far too large "
                               "for this machine") from e
    if done.returncode < 0:
        raise InterpreterError(f"{label} crashed while loading {name}: "
                               f"{_signal_name(-done.returncode)}; the model is damaged or "
                               "uses something this interpreter cannot run (edge-inspect "
                               "shows its operators)")
    return _answer(done, name, label)


def _answer(done: subprocess.CompletedProcess[bytes], name: str, label: str
            ) -> list[np.ndarray]:
    lines = done.stdout.decode("utf-8", errors="replace").strip().splitlines()
    try:
        answer: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        last = (done.stderr.decode("utf-8", errors="replace").strip().splitlines()
                or ["no message"])[-1]
        raise InterpreterError(f"{label} failed while loading {name} (exit code "
                               f"{done.returncode}): {last}") from None
    if answer.get("missing"):
        raise BackendError(str(answer["error"]))
    if not answer.get("ok"):
        raise InterpreterError(f"{name}: {answer.get('backend', label)} refused the model: "
                               f"{answer.get('error')}")
    return [np.asarray(o, dtype=answer["dtype"]) for o in answer.get("outputs", [])]


def _signal_name(number: int) -> str:
    try:
        sig = signal.Signals(number)
    except ValueError:
        return f"signal {number}"
    return f"{sig.name} ({signal.strsignal(sig) or sig.name})"


def _remember(marker: Path, name: str, backend: str, version: str) -> None:
    """Write the cache entry atomically; a cache that cannot be written only costs time."""
    try:
        atomic_write_text(marker, json.dumps({"model": name, "backend": backend,
                                              "version": version}))
    except OSError as e:
        log.debug("cannot remember the first load of %s in %s: %s", name, marker.parent, e)
