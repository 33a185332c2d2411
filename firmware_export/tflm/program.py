"""Compile and link a program against a built TFLM library, for the library's target.

Host programs are ordinary executables. Cortex-M programs get the MPS2 boot files beside this
module (vector table whose reset is newlib's ``_start``, a linker script with code at 0x0 and
RAM at 0x20000000) and newlib's semihosting (``--specs=rdimon.specs``), so they run under
``qemu-system-arm`` with their arguments, files, stdout and exit code.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from firmware_export.tflm.build import BuildError, Library
from firmware_export.tflm.compiler import run_compiler

BOOT = Path(__file__).with_name("boot")
STARTUP = BOOT / "startup.c"
LINKER_SCRIPT = BOOT / "mps2.ld"


@dataclass(frozen=True)
class Program:
    """A linked executable and the library (hence target) it was built for."""

    path: Path
    library: Library


def compile_objects(library: Library, sources: Sequence[Path], includes: Sequence[Path],
                    defines: Sequence[str], into: Path, jobs: int = 2) -> list[Path]:
    """Compile ``sources`` (C or C++) into objects in ``into``.

    Raises:
        BuildError: a file does not compile (the first error line).
    """
    target = library.target
    flags = [*library.include_flags(), *(f"-I{i}" for i in includes), *(f"-I{BOOT}",),
             *library.define_flags(), *defines]
    jobs_list = []
    for source in sources:
        compiler = target.cc_command() if source.suffix == ".c" else target.cxx_command()
        obj = into / f"{source.parent.name}_{source.name}.o"
        jobs_list.append((source, [*compiler, *flags, "-c", str(source), "-o", str(obj)], obj))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for source, error in pool.map(lambda j: (j[0], run_compiler(j[1])), jobs_list):
            if error:
                raise BuildError(f"compiling {source.name} for {target.name} failed: {error}")
    return [obj for _, _, obj in jobs_list]


def link_program(library: Library, objects: Sequence[Path], out: Path) -> Program:
    """Link ``objects`` with the library into ``out``.

    Raises:
        BuildError: the link fails (e.g. a region overflows, a symbol is missing).
    """
    target = library.target
    extra: list[str] = []
    if target.is_arm:
        startup = out.with_name(out.name + ".startup.o")
        error = run_compiler([*target.cc_command(), "-c", str(STARTUP), "-o", str(startup)])
        if error:
            raise BuildError(f"compiling the MPS2 startup code failed: {error}")
        extra = [str(startup), "-T", str(LINKER_SCRIPT), "-Wl,--gc-sections"]
    command = [target.cxx, *target.arch_flags, *map(str, objects), *extra,
               str(library.archive), "-lm", "-o", str(out)]
    error = run_compiler(command)
    if error:
        raise BuildError(f"linking {out.name} for {target.name} failed: {error}")
    return Program(out, library)


def section_sizes(program: Program) -> dict[str, int]:
    """``.text``, ``.data`` and ``.bss`` of an ELF (Berkeley ``size`` totals).

    Raises:
        BuildError: the size tool fails.
    """
    target = program.library.target
    tool = target.cxx[: -len("g++")] + "size" if target.cxx.endswith("g++") else "size"
    done = subprocess.run([tool, "-B", str(program.path)], capture_output=True, text=True,
                          timeout=60, check=False)
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) < 2:
        raise BuildError(f"{tool} failed on {program.path}: {done.stderr.strip()}")
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}
