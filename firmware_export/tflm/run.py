"""Run a program built against TFLM: natively, or under ``qemu-system-arm`` with semihosting.

Every run is a child process with a timeout. A program that dies of a signal (host) or takes a
CPU fault (QEMU: the MPS2 startup code exits with 128 + 11) is reported as crashed, never
raised from inside; the caller decides what a crash means (while bisecting an arena, "does not
fit").
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.child import exit_description
from edge.errors import ExportError
from firmware_export.tflm.program import Program

QEMU = "qemu-system-arm"
FAULT_EXIT = 128 + 11
RUN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Loaded:
    """A raw file QEMU places in emulated memory before reset (``-device loader``)."""

    path: Path
    address: int


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: bytes
    stderr: str
    timed_out: bool = False

    @property
    def crashed(self) -> bool:
        return (self.timed_out or self.returncode < 0 or self.returncode == FAULT_EXIT
                or "Lockup" in self.stderr)

    def describe(self) -> str:
        """How the program ended, in words."""
        if self.timed_out:
            return "did not finish in time"
        if self.returncode < 0:
            return f"crashed with {exit_description(self.returncode)}"
        if self.returncode == FAULT_EXIT:
            return "crashed (CPU fault under QEMU)"
        last = (self.stderr.strip().splitlines() or ["no message"])[-1]
        return f"exit code {self.returncode}: {last}"


def qemu_command(program: Program, args: Sequence[str], icount: bool = False,
                 loads: Sequence[Loaded] = ()) -> list[str]:
    """The ``qemu-system-arm`` command line that runs ``program`` with ``args``.

    Raises:
        ExportError: the program is not for an emulated target, or QEMU is missing.
    """
    emulator = program.library.target.emulator
    if emulator is None:
        raise ExportError(f"{program.path.name} is a host program; run it natively")
    if shutil.which(QEMU) is None:
        raise ExportError(f"{QEMU} is not installed (Debian: apt-get install "
                          "--no-install-recommends qemu-system-arm; `make sysdeps`)")
    semihosting = ",".join(["enable=on", "target=native",
                            *(f"arg={a.replace(',', ',,')}" for a in
                              (program.path.name, *args))])
    command = [QEMU, "-M", emulator.machine, "-cpu", emulator.cpu, "-nographic",
               "-monitor", "none", "-serial", "none", "-semihosting-config", semihosting,
               "-kernel", str(program.path)]
    if icount:
        command += ["-icount", "shift=0"]
    for load in loads:
        command += ["-device", f"loader,file={str(load.path).replace(',', ',,')},"
                               f"addr={load.address:#x},force-raw=on"]
    return command


def run_program(program: Program, args: Sequence[str] = (), timeout: float = RUN_TIMEOUT,
                icount: bool = False, loads: Sequence[Loaded] = ()) -> RunResult:
    """Run ``program`` once and say how it ended (never raises for the program's own failure).

    Raises:
        ExportError: QEMU is needed and missing, or the program cannot be started.
    """
    if program.library.target.is_arm:
        command = qemu_command(program, args, icount, loads)
    else:
        command = [str(program.path), *args]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        return RunResult(-1, e.stdout or b"", (e.stderr or b"").decode(errors="replace"), True)
    except OSError as e:
        raise ExportError(f"cannot start {command[0]}: {e.strerror}") from e
    return RunResult(done.returncode, done.stdout, done.stderr.decode(errors="replace"))
