"""Build an exported project's own files into two programs against a built TFLM.

* the firmware: ``src/main.cpp`` with everything beside it (model array, ``op_resolver.h``,
  ``arena.h``/``arena.cc``, labels) and the Arduino shim of ``shim/`` (``Serial`` writes to
  stdout; ``edge_camera_frame()`` reads frames from a file);
* the probe: the same model array and op resolver with ``shim/edge_probe.cpp``, which answers
  one question per run (does an arena of N bytes allocate, where is each tensor, what are the
  outputs and how many timer ticks did an inference take).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import VerifyError
from firmware_export.tflm.build import Library
from firmware_export.tflm.program import Program, compile_objects, link_program

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


def build_project(project: Path, library: Library, capacity: int, work: Path,
                  defines: Sequence[str] = ()) -> ProjectBuild:
    """Compile the project's sources once and link the firmware and the probe.

    Raises:
        BuildError: a file does not compile or a program does not link.
        VerifyError: the project has no ``src/main.cpp`` or model array.
    """
    src = project / "src"
    if not (src / "main.cpp").is_file():
        raise VerifyError(f"{project} has no src/main.cpp; export it with edge-export first")
    sources = sorted(p for p in src.iterdir() if p.suffix in (".cc", ".cpp", ".c"))
    shared = [p for p in sources if p.name not in FIRMWARE_ONLY]
    own = [p for p in sources if p.name in FIRMWARE_ONLY]
    includes = [src, SHIM]
    objects = compile_objects(library, [*shared, *own, HARNESS], includes, defines, work)
    by_source = dict(zip([*shared, *own, HARNESS], objects, strict=True))
    probe_defines = [*defines, f"-DEDGE_MODEL_ARRAY={model_array(src)}",
                     f"-DEDGE_PROBE_CAPACITY={capacity}"]
    (probe_object,) = compile_objects(library, [PROBE], includes, probe_defines, work)
    firmware = link_program(library, [*by_source.values()], work / "firmware.elf")
    probe = link_program(library, [*(by_source[p] for p in shared), probe_object],
                         work / "probe.elf")
    return ProjectBuild(firmware, probe, capacity)


def build_slot_firmware(project: Path, library: Library, work: Path,
                        defines: Sequence[str]) -> Program:
    """The firmware with ``EDGE_USE_MODEL_SLOT`` (and the slot's address macros in ``defines``)."""
    src = project / "src"
    sources = sorted(p for p in src.iterdir() if p.suffix in (".cc", ".cpp", ".c"))
    folder = Path(tempfile.mkdtemp(prefix="slot-", dir=work))
    objects = compile_objects(library, [*sources, HARNESS], [src, SHIM],
                              ["-DEDGE_USE_MODEL_SLOT=1", *defines], folder)
    return link_program(library, objects, folder / "firmware-slot.elf")
