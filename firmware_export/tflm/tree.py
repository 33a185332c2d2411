"""A TensorFlow Lite Micro source tree: where it is, what it holds, and its content hash.

A tree is the output of TFLM's ``create_tflm_tree.py`` (a folder with ``tensorflow/lite/micro``
and ``third_party``), given as a folder or as a ``.tar.gz`` of one (unpacked into the cache).
It comes from ``--tflm PATH``, else ``$EDGE_TFLM_DIR``. A tree made with
``OPTIMIZED_KERNEL_DIR=cmsis_nn`` carries ``tensorflow/lite/micro/kernels/cmsis_nn`` and the
CMSIS-NN sources: its kernel set is ``cmsis-nn``; otherwise it is ``reference``.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from edge.cache import cache_root
from edge.errors import ExportError
from firmware_export.tflm.cache import cached_folder

TFLM_ENV = "EDGE_TFLM_DIR"
MARKER = Path("tensorflow/lite/micro/micro_interpreter.h")
CMSIS_NN_DIR = Path("tensorflow/lite/micro/kernels/cmsis_nn")
SKIPPED_TOP = ("signal",)  # not needed by any builtin operator


@dataclass(frozen=True)
class TflmTree:
    """An unpacked tree, its kernel set and a hash of every file in it."""

    root: Path
    kernels: str  # "reference" or "cmsis-nn"
    digest: str

    def sources(self) -> list[Path]:
        """The library's C and C++ files, relative to the root, sorted."""
        found = []
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root)
            if relative.parts[0] in SKIPPED_TOP or path.suffix not in (".cc", ".c"):
                continue
            if "/tools/" in f"/{relative.as_posix()}" or relative.name.endswith("_test.cc"):
                continue
            found.append(relative)
        return found


def locate_tree(given: str | Path | None = None) -> TflmTree:
    """The tree named by ``given`` or ``$EDGE_TFLM_DIR``.

    Raises:
        ExportError: neither is set, the path is missing, or it is not a TFLM tree.
    """
    where = given if given not in (None, "") else os.environ.get(TFLM_ENV)
    if not where:
        raise ExportError("no TensorFlow Lite Micro tree: pass --tflm DIR (a folder or .tar.gz "
                          "made by TFLM's create_tflm_tree.py) or set EDGE_TFLM_DIR")
    path = Path(where).expanduser()
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        path = unpack(path)
    return open_tree(path)


def open_tree(path: Path) -> TflmTree:
    """Read a tree folder (or the single tree folder inside ``path``).

    Raises:
        ExportError: ``path`` is not a TFLM tree.
    """
    if not (path / MARKER).is_file():
        inner = [p for p in path.iterdir() if (p / MARKER).is_file()] if path.is_dir() else []
        if len(inner) != 1:
            raise ExportError(f"{path} is not a TensorFlow Lite Micro tree (no {MARKER}); pass "
                              "the folder made by create_tflm_tree.py")
        path = inner[0]
    kernels = "cmsis-nn" if (path / CMSIS_NN_DIR).is_dir() else "reference"
    return TflmTree(path.resolve(), kernels, tree_digest(path))


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes (16 hex digits)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def unpack(archive: Path) -> Path:
    """Unpack ``archive`` once into the cache (keyed by its hash); return the folder.

    Raises:
        ExportError: the archive is unreadable or holds unsafe paths.
    """
    key = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    folder = cache_root() / "tflm" / "trees" / f"{archive.name.split('.')[0]}-{key}"

    def extract(into: Path) -> None:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(into, filter="data")
        except (OSError, tarfile.TarError) as e:
            raise ExportError(f"cannot unpack the TFLM tree {archive}: {e}") from e

    return cached_folder(folder, extract)
