"""Questions to the probe program, one process each: fits, minimum arena, tensor offsets,
outputs and timer ticks. A crash while allocating counts as "does not fit" (TFLM crashes at
some arenas that are too small); any other crash is a :class:`VerifyError` naming the step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import VerifyError
from firmware_export.tflm.program import Program
from firmware_export.tflm.run import RunResult, run_program

INSTRUCTIONS_PER_TICK = 40  # MPS2 TIMER0 at 25 MHz, QEMU -icount shift=0 (1 ns / instruction)
FIT_TIMEOUT = 180.0  # one AllocateTensors; a probe that hangs counts as "does not fit"


@dataclass(frozen=True)
class Fit:
    fits: bool
    used: int = 0  # arena_used_bytes() when it fits
    crashed: bool = False


@dataclass(frozen=True)
class Minimum:
    """The smallest arena that allocates, and how it was found."""

    minimum: int
    probes: int
    crashes: int
    used: int  # arena_used_bytes() at the minimum


def _run(probe: Program, args: list[str], step: str, icount: bool = False) -> RunResult:
    result = run_program(probe, args, icount=icount)
    if result.crashed or result.returncode != 0:
        raise VerifyError(f"TFLM ({probe.library.target.name}) {result.describe()} while "
                          f"{step}")
    return result


def fit(probe: Program, arena: int) -> Fit:
    result = run_program(probe, ["fit", str(arena)], timeout=FIT_TIMEOUT)
    if result.crashed:
        return Fit(False, crashed=True)
    words = result.stdout.decode(errors="replace").split()
    if result.returncode != 0 or len(words) < 2 or words[0] != "fit":
        raise VerifyError(f"TFLM ({probe.library.target.name}) {result.describe()} while "
                          f"allocating an arena of {arena} B")
    return Fit(words[1] == "1", int(words[3]) if words[1] == "1" else 0)


def minimum_arena(probe: Program, guess: int, capacity: int) -> Minimum:
    """Bisect the smallest arena in which the probe allocates, starting around ``guess``.

    Raises:
        VerifyError: even ``capacity`` bytes do not fit, or the probe fails otherwise.
    """
    probes = crashes = 0

    def test(n: int) -> Fit:
        nonlocal probes, crashes
        answer = fit(probe, n)
        probes += 1
        crashes += answer.crashed
        return answer

    high = min(guess, capacity)
    best = test(high)
    while not best.fits:
        if high >= capacity:
            raise VerifyError(f"the model does not allocate even in {capacity} B on "
                              f"{probe.library.target.name}")
        high = min(capacity, high * 2)
        best = test(high)
    low = max(0, high - max(1024, high // 64))
    while low > 0 and test(low).fits:
        high, low = low, max(0, low - (high - low) * 2)
    while high - low > 1:
        middle = (low + high) // 2
        answer = test(middle)
        if answer.fits:
            high, best = middle, answer
        else:
            low = middle
    return Minimum(high, probes, crashes, best.used)


def tensor_offsets(probe: Program, arena: int) -> dict[int, int]:
    """Offset from the arena start of every tensor placed in the arena head."""
    result = _run(probe, ["plan", str(arena)], "reading tensor offsets")
    offsets = {}
    for line in result.stdout.decode(errors="replace").splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "tensor":
            offsets[int(words[1])] = int(words[2])
    return offsets


def run_inputs(probe: Program, arena: int, inputs: list[np.ndarray], dtype: str,
               work: Path, icount: bool = False) -> tuple[list[np.ndarray], list[int]]:
    """Output 0 for each input (flattened) and the instructions each inference took."""
    source, target = work / "inputs.bin", work / "outputs.bin"
    source.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for x in inputs))
    result = _run(probe, ["run", str(arena), str(source), str(target)], "running inferences",
                  icount)
    flat = np.frombuffer(target.read_bytes(), dtype=dtype)
    if len(inputs) == 0 or flat.size % len(inputs):
        raise VerifyError(f"TFLM ({probe.library.target.name}) wrote {flat.size} output "
                          f"values for {len(inputs)} inputs")
    ticks = [int(line.split()[1]) for line in result.stdout.decode().splitlines()
             if line.startswith("ticks ")]
    return list(flat.reshape(len(inputs), -1)), [t * INSTRUCTIONS_PER_TICK for t in ticks]
