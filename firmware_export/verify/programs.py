"""Build an exported project's own files into two programs against a built TFLM (cached by
the hash of every input, so a second verification of the same project links nothing).

* the firmware: ``src/main.cpp`` with everything beside it (model array, ``op_resolver.h``,
  ``arena.h``/``arena.cc``, labels) and the Arduino shim of ``shim/`` (``Serial`` writes to
  stdout; ``edge_camera_frame()`` reads frames from a file);
* the probe: the same model array and op resolver with ``shim/edge_probe.cpp``, which answers
  one question per run (does an arena of N bytes allocate, where is each tensor, what are the
  outputs and how many timer ticks did an inference take).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import VerifyError
from firmware_export.tflm.build import Library
from firmware_export.tflm.cache import cache_root, cached_folder
from firmware_export.tflm.program import BOOT, Program, compile_objects, link_program

SHIM = Path(__file__).with_name("shim")
HARNESS = SHIM / "edge_harness.cpp"
PROBE = SHIM / "edge_probe.cpp"
FIRMWARE_ONLY = ("main.cpp", "arena.cc")
ARRAY = re.compile(r"extern\s+const\s+(?:unsigned\s+char|uint8_t)\s+([A-Za-z_]\w*)\s*\[")


@dataclass(frozen=True)
class ProjectBuild:
    """The two programs built from one project for one library."""

    firmware: Program
    probe: Program
    capacity: int  # largest arena the probe can try


def model_array(src: Path) -> str:
    """The name of the model array that ``src/model_data.h`` declares.

    Raises:
        VerifyError: no declaration found.
    """
    header = src / "model_data.h"
    found = ARRAY.search(header.read_text(encoding="utf-8")) if header.is_file() else None
    if found is None:
        raise VerifyError(f"{header} declares no model array; re-export the project")
    return found.group(1)


def program_key(library: Library, src: Path, extra: Sequence[str]) -> str:
    """A hash of everything a program build reads: the project's sources and headers, the shim
    and boot files, the library's key and the extra flags."""
    digest = hashlib.sha256(f"{library.folder.name}\0{library.tree.digest}".encode())
    for folder in (src, SHIM, BOOT):
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update("\0".join(extra).encode())
    return digest.hexdigest()[:16]


def build_project(project: Path, library: Library, capacity: int,
                  defines: Sequence[str] = ()) -> ProjectBuild:
    """The firmware and the probe for ``project``: built once per input hash into the cache.

    Raises:
        BuildError: a file does not compile or a program does not link.
        VerifyError: the project has no ``src/main.cpp`` or model array.
    """
    src = project / "src"
    if not (src / "main.cpp").is_file():
        raise VerifyError(f"{project} has no src/main.cpp; export it with edge-export first")
    array = model_array(src)
    key = program_key(library, src, [*defines, array, str(capacity)])
    folder = cache_root() / "tflm" / "programs" / f"{library.target.name}-{key}"
    cached_folder(folder, lambda into: _link_both(src, library, capacity, defines, array, into))
    return ProjectBuild(Program(folder / "firmware.elf", library),
                        Program(folder / "probe.elf", library), capacity)


def _link_both(src: Path, library: Library, capacity: int, defines: Sequence[str], array: str,
               into: Path) -> None:
    sources = _sources(src)
    shared = [p for p in sources if p.name not in FIRMWARE_ONLY]
    own = [p for p in sources if p.name in FIRMWARE_ONLY]
    includes = [src, SHIM]
    objects = compile_objects(library, [*shared, *own, HARNESS], includes, defines, into)
    by_source = dict(zip([*shared, *own, HARNESS], objects, strict=True))
    probe_defines = [*defines, f"-DEDGE_MODEL_ARRAY={array}", f"-DEDGE_PROBE_CAPACITY={capacity}"]
    (probe_object,) = compile_objects(library, [PROBE], includes, probe_defines, into)
    link_program(library, [*by_source.values()], into / "firmware.elf")
    link_program(library, [*(by_source[p] for p in shared), probe_object], into / "probe.elf")
    for obj in into.glob("*.o"):
        obj.unlink()


def build_slot_firmware(project: Path, library: Library, defines: Sequence[str]) -> Program:
    """The firmware with ``EDGE_USE_MODEL_SLOT`` (and the slot's address macros in ``defines``),
    built once per input hash into the cache."""
    src = project / "src"
    flags = ["-DEDGE_USE_MODEL_SLOT=1", *defines]
    folder = cache_root() / "tflm" / "programs" / (
        f"{library.target.name}-slot-{program_key(library, src, flags)}")

    def make(into: Path) -> None:
        objects = compile_objects(library, [*_sources(src), HARNESS], [src, SHIM], flags, into)
        link_program(library, objects, into / "firmware-slot.elf")
        for obj in into.glob("*.o"):
            obj.unlink()

    cached_folder(folder, make)
    return Program(folder / "firmware-slot.elf", library)


def _sources(src: Path) -> list[Path]:
    return sorted(p for p in src.iterdir() if p.suffix in (".cc", ".cpp", ".c"))
