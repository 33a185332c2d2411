"""The interpreter packages: the one module that imports them, lazily, when one is chosen.

Order of preference when none is named: ``ai-edge-litert`` (LiteRT, the maintained package),
``tflite-runtime`` (the legacy one, still what old Coral images ship), ``tensorflow`` (the whole
of TensorFlow, whose ``tf.lite.Interpreter`` is the same C++ core). ``tflm``, the TFLite Micro
interpreter from PyPI, is used only when named: it runs in a child process
(:mod:`edge.runtime.tflm`, which checks for it without importing it here). tflite-runtime was built
against numpy 1 and fails deep inside its constructor under numpy 2, so that pairing is detected
from package metadata before anything is imported.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import BackendError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Package:
    """Where one interpreter lives and how to install it."""

    distribution: str
    top_module: str
    interpreter_module: str
    install: str


PACKAGES: dict[str, _Package] = {
    "ai-edge-litert": _Package("ai-edge-litert", "ai_edge_litert", "ai_edge_litert.interpreter",
                               "pip install ai-edge-litert"),
    "tflite-runtime": _Package("tflite-runtime", "tflite_runtime", "tflite_runtime.interpreter",
                               "pip install 'edge-labels[tflite-runtime]' (in a venv with "
                               "numpy<2)"),
    "tensorflow": _Package("tensorflow", "tensorflow", "tensorflow.lite.python.interpreter",
                           "pip install tensorflow"),
}
TFLM = "tflm"
BUILTIN_CUSTOM_OPS = frozenset({"TFLite_Detection_PostProcess"})
AUTO_BACKENDS = tuple(PACKAGES)  # tried in this order when no backend is named
BACKEND_NAMES = (*AUTO_BACKENDS, TFLM)


@dataclass(frozen=True)
class Backend:
    """A loaded interpreter package.

    Attributes:
        name: the package's name on PyPI, e.g. ``ai-edge-litert``.
        version: its installed version.
        interpreter_class: the ``Interpreter`` class (``model_content=``, ``num_threads=``,
            ``experimental_delegates=``).
        load_delegate: the package's ``load_delegate(library, options)``.
    """

    name: str
    version: str
    interpreter_class: Callable[..., Any]
    load_delegate: Callable[..., Any]

    def resolves_custom_op(self, opcode: str) -> bool:
        """Whether the package itself implements the custom op (TensorFlow's Flex ops, and
        the SSD post-processing op that LiteRT's and TFLM's builtin resolvers register)."""
        return opcode in BUILTIN_CUSTOM_OPS or (self.name == "tensorflow"
                                                and opcode.startswith("Flex"))

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


def numpy_conflict(package: str, package_version: str, numpy_version: str) -> str | None:
    """Why ``package`` cannot work with this numpy, or None when it can."""
    if package == "tflite-runtime" and int(numpy_version.split(".")[0]) >= 2:
        return (f"tflite-runtime {package_version} needs numpy<2; install the `tflite-runtime` "
                "extra in its own venv or use ai-edge-litert")
    return None


def load_backend(name: str | None = None) -> Backend:
    """Import an interpreter package: ``name`` if given, else the first one installed.

    Raises:
        BackendError: the named package is missing or unusable (the message says how to
            install it), or, with no name, none of them is.
    """
    if name == TFLM:
        return _tflm()
    if name is not None:
        if name not in PACKAGES:
            raise BackendError(f"unknown backend {name!r}; choose one of "
                               f"{', '.join(BACKEND_NAMES)}")
        return _import(PACKAGES[name])
    reasons = []
    for package in PACKAGES.values():
        try:
            backend = _import(package)
        except BackendError as e:
            log.debug("backend %s skipped: %s", package.distribution, e)
            reasons.append(str(e))
            continue
        log.info("interpreter backend: %s", backend)
        return backend
    raise BackendError("no TFLite interpreter is usable; install one with "
                       f"`{PACKAGES['ai-edge-litert'].install}` ({'; '.join(reasons)})")


def _import(package: _Package) -> Backend:
    if importlib.util.find_spec(package.top_module) is None:
        raise BackendError(f"{package.distribution} is not installed; install it with "
                           f"`{package.install}`")
    version = _version(package.distribution)
    conflict = numpy_conflict(package.distribution, version, np.__version__)
    if conflict:
        raise BackendError(conflict)
    try:
        module = importlib.import_module(package.interpreter_module)
        interpreter_class = module.Interpreter
        load_delegate = module.load_delegate
    except (ImportError, AttributeError) as e:
        raise BackendError(f"{package.distribution} {version} is installed but its interpreter "
                           f"cannot be imported ({e}); reinstall it with "
                           f"`{package.install}`") from e
    return Backend(package.distribution, version, interpreter_class, load_delegate)


def _tflm() -> Backend:
    from edge.runtime.tflm import TflmInterpreter, tflm_version

    def no_delegate(*_: Any, **__: Any) -> Any:
        raise BackendError(f"--backend {TFLM} has no Edge TPU delegate; use ai-edge-litert "
                           "for Edge TPU models")

    return Backend(TFLM, tflm_version(), TflmInterpreter, no_delegate)


def _version(distribution: str) -> str:
    candidates = [distribution, distribution.replace("-", "_")]
    if distribution == "tensorflow":
        candidates += ["tensorflow-cpu", "tf-nightly"]
    for candidate in candidates:
        try:
            return importlib.metadata.version(candidate)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "(unknown version)"
