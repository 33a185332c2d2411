"""Which pinned TFLM library a project pulls without ``--tflm``, and whether it has our ops.

The data is ``libraries.toml`` beside this module: one entry per library, the kernel sets it
serves, its pin, and the builtin operators it lacks.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from edge.errors import ExportError
from firmware_export.codegen.resolver import add_method

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedLibrary:
    """One pinned TFLM library (see libraries.toml)."""

    key: str
    title: str
    lib_deps: tuple[str, ...]  # PlatformIO lib_deps lines
    idf_component: str  # or an ESP-IDF component (name), pinned to ``version``
    version: str
    lacks: frozenset[str]
    checked: bool
    kernels: tuple[str, ...]


@cache
def _table() -> tuple[tuple[PinnedLibrary, ...], frozenset[str]]:
    text = (resources.files("firmware_export.codegen") / "libraries.toml").read_text("utf-8")
    data = tomllib.loads(text)
    libraries = tuple(
        PinnedLibrary(key, entry["title"], tuple(entry.get("lib_deps", ())),
                      entry.get("idf_component", ""), entry.get("version", ""),
                      frozenset(entry["lacks"]), bool(entry["checked"]), tuple(entry["kernels"]))
        for key, entry in data["library"].items())
    return libraries, frozenset(data["recent"])


def library_for(kernels: str) -> PinnedLibrary:
    """The pinned library for a board whose profile says ``kernels``."""
    for library in _table()[0]:
        if kernels in library.kernels:
            return library
    raise ExportError(f"no pinned TFLM library serves {kernels!r} kernels; export with "
                      "--tflm DIR")


def check_operators(library: PinnedLibrary, opcodes: Sequence[str]) -> None:
    """Refuse operators the pinned library lacks; warn on recent ones it was not checked for.

    Raises:
        ExportError: naming each missing operator's resolver method and what to do.
    """
    missing = sorted(set(opcodes) & library.lacks)
    if missing:
        names = ", ".join(f"{add_method(op)} ({op})" for op in missing)
        raise ExportError(f"the pinned TFLM library {library.title} has no {names}; export "
                          "with --tflm DIR to build with a TFLM tree that has it")
    unchecked = sorted(set(opcodes) & _table()[1]) if not library.checked else []
    if unchecked:
        log.warning("%s was not checked for %s (operators TFLM added recently); if the build "
                    "fails there, export with --tflm DIR", library.title,
                    ", ".join(add_method(op) for op in unchecked))
