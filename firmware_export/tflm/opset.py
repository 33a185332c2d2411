"""Which sources of a TFLM tree an operator set needs: the core, plus the kernels it registers.

A *kernel source* is a file under ``tensorflow/lite/micro/kernels/`` that defines a
``Register_*`` function; every other library source is *core* (the interpreter, the allocators,
the kernels' shared code such as ``kernel_util.cc``, CMSIS-NN's C sources). Which ``Register_*``
an operator needs is read from the tree's own ``micro_mutable_op_resolver.h`` (the body of its
``Add*`` method), not from a table of ours, so a tree that renames a kernel is followed. Left out
of both: tests, ``testing/`` helpers, and the sources of ``signal/`` and kissfft (no builtin
operator uses them; their headers stay, the resolver header includes some); the library also
leaves out TFLM's test support (:data:`TEST_SUPPORT`), which ``edge-export --tflm`` copies.

Used by the library build (:mod:`firmware_export.tflm.build`: a library per operator set) and by
``edge-export --tflm`` (:mod:`firmware_export.codegen.tflm_sources`: the files to copy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ExportError

RESOLVER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
KERNELS = "tensorflow/lite/micro/kernels/"
SOURCE_SUFFIXES = (".cc", ".c", ".cpp")
SKIPPED_TOP = ("signal/", "third_party/kissfft/")
# TFLM's test support: referenced only by its tests and each other (kernel_runner.h includes
# the fake context and mock graph); no program links them, so no library compiles them.
TEST_SUPPORT = frozenset({
    "tensorflow/lite/micro/test_helpers.cc", "tensorflow/lite/micro/test_helper_custom_ops.cc",
    "tensorflow/lite/micro/kernels/kernel_runner.cc", "tensorflow/lite/micro/mock_micro_graph.cc",
    "tensorflow/lite/micro/fake_micro_context.cc"})
# Where TFLM's method name is not the CamelCase of the builtin name (checked against the
# pinned tree's micro_mutable_op_resolver.h by tests/test_tflm_library.py).
METHOD_EXCEPTIONS = {
    "BATCH_MATMUL": "BatchMatMul",
    "CUMSUM": "CumSum",
    "PADV2": "PadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
}
_METHOD = re.compile(r"TfLiteStatus (Add\w+)\((.*?)\n  \}", re.S)
_REGISTER_CALL = re.compile(r"\b(Register_\w+)\(\)")
_REGISTER_DEF = re.compile(r"^TFLMRegistration\*?\s*&?\s*(Register_\w+)\(", re.M)


def add_method(opcode: str) -> str:
    """``CONV_2D`` -> ``AddConv2D``."""
    name = METHOD_EXCEPTIONS.get(opcode) or "".join(_camel(p) for p in opcode.split("_"))
    return f"Add{name}"


def _camel(part: str) -> str:
    return part.upper() if part[:1].isdigit() else part.capitalize()


def resolver_registrations(header: str) -> dict[str, frozenset[str]]:
    """``AddConv2D`` -> the ``Register_*`` functions it calls, from the resolver header."""
    return {name: frozenset(_REGISTER_CALL.findall(body))
            for name, body in _METHOD.findall(header)}


def needed_registrations(header: str, opcodes: Sequence[str],
                         tree: str = "the TFLM tree") -> frozenset[str]:
    """The ``Register_*`` functions a resolver with these operators calls (``tree``: how the
    error names the tree the header came from).

    Raises:
        ExportError: the tree's resolver has no method for one of the operators.
    """
    methods = resolver_registrations(header)
    needed: set[str] = set()
    for op in sorted(set(opcodes)):
        method = add_method(op)
        if method not in methods:
            raise ExportError(f"{tree} has no {method} ({op}) in its {RESOLVER}; "
                              "use a newer TFLM")
        needed |= methods[method]
    return frozenset(needed)


def defined_registrations(text: str) -> frozenset[str]:
    """The ``Register_*`` functions a source file defines."""
    return frozenset(_REGISTER_DEF.findall(text))


def is_library_source(relative: str) -> bool:
    """A C/C++ file that a TFLM library may compile (not a test, test support or unused third
    party)."""
    return (relative.endswith(SOURCE_SUFFIXES) and "_test." not in relative
            and "/testing/" not in relative and not relative.startswith(SKIPPED_TOP)
            and relative not in TEST_SUPPORT)


@dataclass(frozen=True)
class TreeSources:
    """A tree's library sources (relative, sorted): the core, and each kernel source with the
    ``Register_*`` functions it defines."""

    core: tuple[str, ...]
    kernels: tuple[tuple[str, frozenset[str]], ...]

    def for_registrations(self, needed: frozenset[str] | None) -> tuple[str, ...]:
        """The core and the kernel sources defining one of ``needed`` (None: every kernel)."""
        chosen = [name for name, defined in self.kernels
                  if needed is None or defined & needed]
        return tuple(sorted([*self.core, *chosen]))

    @property
    def all(self) -> tuple[str, ...]:
        return self.for_registrations(None)


def split_sources(root: Path) -> TreeSources:
    """The library sources of the tree at ``root``, split into core and kernels."""
    core, kernels = [], []
    for relative in sorted(p.relative_to(root).as_posix() for p in tree_files(root)):
        if not is_library_source(relative):
            continue
        defined = (defined_registrations((root / relative).read_text(encoding="utf-8",
                                                                     errors="replace"))
                   if relative.startswith(KERNELS) else frozenset())
        if defined:
            kernels.append((relative, defined))
        else:
            core.append(relative)
    return TreeSources(tuple(core), tuple(kernels))


def sources_for(root: Path, opcodes: Sequence[str] | None) -> tuple[str, ...]:
    """The library sources a program whose resolver has ``opcodes`` needs (None: every
    operator the tree has).

    Raises:
        ExportError: the tree lacks one of the operators.
    """
    needed = (None if opcodes is None else
              needed_registrations((root / RESOLVER).read_text(encoding="utf-8"), opcodes))
    return split_sources(root).for_registrations(needed)


def tree_files(root: Path) -> Iterable[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path
