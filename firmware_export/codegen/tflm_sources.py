"""``edge-export --tflm DIR``: the files of a TFLM source tree that a model's operators need.

The tree is the output of TFLM's ``create_tflm_tree.py`` (``../shared/tflm/`` in the tests).
Kept: the interpreter, the allocators, the kernels' shared code, the flatbuffers / gemmlowp /
ruy headers, CMSIS-NN when the tree has it, and each licence. Left out: the sources of
``signal/`` and kissfft (no builtin operator uses them; their headers stay, the resolver header
includes some), tests, and every kernel source whose ``Register_*``
functions the model's resolver does not call (:mod:`firmware_export.tflm.opset` decides, for
this copy and for the library build alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware_export.tflm.opset import (
    KERNELS,
    RESOLVER,
    SKIPPED_TOP,
    SOURCE_SUFFIXES,
    defined_registrations,
    needed_registrations,
    resolver_registrations,
    tree_files,
)
from firmware_export.tflm.tree import locate_tree

INCLUDE_DIRS = ("third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy")
CMSIS_INCLUDE_DIRS = ("third_party/cmsis_nn", "third_party/cmsis_nn/Include",
                      "third_party/cmsis/CMSIS/Core/Include")
# CMSIS-NN int8 kernels only; PROJECT_GENERATION makes cortex_m_generic/micro_time.cc a stub
# instead of including a device header the tree does not carry (../shared/tflm/README.md).
CMSIS_DEFINES = ("-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0",
                 "-DPROJECT_GENERATION")


@dataclass(frozen=True)
class TflmSelection:
    """The files to copy (relative to the tree) and the flags a build of them needs."""

    root: Path
    files: tuple[str, ...]
    flags: tuple[str, ...]  # -I (relative to the copied tree) and -D


def choose_tree(paths: Sequence[str | Path], kernels: str) -> Path:
    """Of the trees given (``--tflm`` may be repeated), the root of the one for the board's
    kernel set.

    A board whose profile says ``cmsis-nn`` gets a CMSIS-NN tree when one is given; any other
    board a reference tree when one is given; otherwise the first tree. Trees are located by
    :func:`firmware_export.tflm.tree.locate_tree` (a folder or a ``.tar.gz``).

    Raises:
        ExportError: a path is not a TFLM tree.
    """
    trees = [locate_tree(path) for path in paths]
    wanted = "cmsis-nn" if kernels == "cmsis-nn" else "reference"
    return next((tree for tree in trees if tree.kernels == wanted), trees[0]).root


def _kept(relative: str, text: str | None, needed: frozenset[str]) -> bool:
    if "_test." in relative or "/testing/" in relative:
        return False
    if relative.startswith(SKIPPED_TOP):  # headers only: the resolver header includes them
        return text is None
    if text is None or not relative.startswith(KERNELS):
        return True
    defined = defined_registrations(text)
    return not defined or bool(defined & needed)


def select_files(root: Path, opcodes: Sequence[str]) -> TflmSelection:
    """The files of the tree at ``root`` that a project with these operators compiles.

    Raises:
        ExportError: not a tree, or it lacks an operator.
    """
    needed = needed_registrations((root / RESOLVER).read_text(encoding="utf-8"), opcodes,
                                  tree="the TFLM tree given with --tflm")
    files = []
    for path in sorted(tree_files(root)):
        relative = path.relative_to(root).as_posix()
        text = (path.read_text(encoding="utf-8", errors="replace")
                if path.suffix in SOURCE_SUFFIXES else None)
        if _kept(relative, text, needed):
            files.append(relative)
    includes = [d for d in INCLUDE_DIRS if (root / d).is_dir()]
    defines = ["-DTF_LITE_STATIC_MEMORY"]
    if (root / "third_party" / "cmsis_nn").is_dir():
        includes += [d for d in CMSIS_INCLUDE_DIRS if (root / d).is_dir()]
        defines += CMSIS_DEFINES
    return TflmSelection(root, tuple(files),
                         tuple(["-I.", *(f"-I{d}" for d in includes), *defines]))



__all__ = ["KERNELS", "RESOLVER", "SKIPPED_TOP", "SOURCE_SUFFIXES", "TflmSelection",
           "choose_tree", "needed_registrations", "resolver_registrations", "select_files"]
