"""The individual checks of ``--verify``: each asks one question and answers with a Check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.boards import BoardProfile
from edge.decode.centroids import decode_regions
from edge.model.types import Model
from edge.serial.protocol import StreamDecoder
from firmware_export.codegen.detector import CentroidValues
from firmware_export.plan.arena import ArenaPlan
from firmware_export.tflm.program import Program, section_sizes
from firmware_export.tflm.run import run_program
from firmware_export.verify import probe
from firmware_export.verify.centroids import streamed_detections
from firmware_export.verify.programs import ProjectBuild
from firmware_export.verify.report import FAIL, INFO, NOT_COMPARED, PASS, WARN, Check, VerifyReport

MAX_LSB = 32  # LiteRT rounds differently: 0-1 LSB on most inputs, up to 22 on the demo model
RATIO_LOW, RATIO_HIGH = 1.000, 1.005


def arena_ratio(name: str, build: str, predicted: int, measured: int, arena_size: int,
                **extra: object) -> Check:
    """Predicted / real minimum: pass in [1.000, 1.005]; fail when the arena would not fit."""
    ratio = predicted / measured
    values = {"predicted": predicted, "measured": measured, "arena_size": arena_size,
              "ratio": round(ratio, 5), **extra}
    text = f"predicted {predicted:,} B, real minimum {measured:,} B (x{ratio:.4f})"
    if measured > arena_size:
        return Check(name, build, FAIL, f"{text}: larger than kTensorArenaSize {arena_size:,} B",
                     values)
    inside = RATIO_LOW <= ratio <= RATIO_HIGH
    return Check(name, build, PASS if inside else WARN,
                 text + ("" if inside else f", outside [{RATIO_LOW}, {RATIO_HIGH}]"), values)


def run_outputs(built: ProjectBuild, arena: int, model: Model, inputs: list[np.ndarray],
                work: Path) -> tuple[list[np.ndarray], list[int]]:
    """The probe's outputs with ``arena`` bytes, counting instructions on Cortex-M."""
    dtype = model.output_tensors[0].dtype
    icount = built.probe.library.target.is_arm
    return probe.run_inputs(built.probe, arena, inputs, dtype, work, icount)


def firmware_stream(report: VerifyReport, built: ProjectBuild, model: Model,
                    inputs: list[np.ndarray], outputs: list[np.ndarray], work: Path,
                    label: str, detector: CentroidValues | None = None) -> None:
    """main.cpp with the shim: allocates, then one label frame per input with the top-1 (a
    ``detector``'s: with the centroids of its output, as the Python decoder finds them)."""
    frames = work / "frames.bin"
    frames.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for x in inputs))
    icount = built.firmware.library.target.is_arm
    result = run_program(built.firmware, [str(frames), str(inputs[0].nbytes)], icount=icount)
    if result.crashed or result.returncode != 0:
        report.add(Check("firmware allocates", label, FAIL, f"main.cpp {result.describe()}"))
        return
    decoder = StreamDecoder("auto")
    records = decoder.feed(result.stdout)
    texts = [r.text for r in records if r.text]
    if texts:
        report.add(Check("firmware allocates", label, FAIL, f"main.cpp reported: {texts[0]}"))
        return
    report.add(Check("firmware allocates", label, PASS, "main.cpp's AllocateTensors succeeded "
                     "with the generated op resolver and kTensorArenaSize"))
    if detector is not None:
        shape = model.input_tensors[0].shape
        frame_size = (shape[2], shape[1]) if len(shape) == 4 else (shape[-1], 1)
        report.add(streamed_detections(records, outputs, detector, frame_size, label))
    else:
        expected = [int(np.argmax(o)) for o in outputs]
        got = [r.label for r in records]
        status = PASS if got == expected else FAIL
        report.add(Check("streamed labels", label, status,
                         f"{len(got)} binary frames decoded by edge.serial.protocol, top-1 {got} "
                         f"(expected {expected})", {"labels": got, "expected": expected}))
    if icount:
        report.add(loop_instructions(result.stderr, len(inputs), label, detector is not None))


def loop_instructions(stderr: str, frames: int, label: str, detector: bool) -> Check:
    """The instructions of main.cpp's loop() per frame, from the harness's timer lines."""
    ticks = [int(line.split()[2]) for line in stderr.splitlines()
             if line.startswith("edge-loop ticks ")][:frames]
    work = ("inference, centroid decoding" if detector else "inference, top label") + \
        ", record encoding and serial write"
    if not ticks:
        return Check("instructions per frame", label, INFO, "no count: the firmware printed "
                     "no timer lines")
    mean = sum(ticks) * probe.INSTRUCTIONS_PER_TICK // len(ticks)
    return Check("instructions per frame", label, INFO,
                 f"{mean / 1e6:.2f} M instructions per main.cpp loop() ({work}; QEMU -icount, "
                 f"{len(ticks)} frames)", {"instructions": mean})


def minimum_vs_prediction(report: VerifyReport, built: ProjectBuild, plan: ArenaPlan,
                          label: str) -> int:
    """Bisect the real minimum, report it against the prediction, return it."""
    found = probe.minimum_arena(built.probe, plan.minimum, built.capacity)
    report.add(arena_ratio("minimal arena", label, plan.minimum, found.minimum, plan.size,
                           probes=found.probes, crashes=found.crashes,
                           arena_used_bytes=found.used))
    return found.minimum


def offsets(report: VerifyReport, built: ProjectBuild, plan: ArenaPlan, arena: int,
            label: str) -> None:
    real = probe.tensor_offsets(built.probe, arena)
    memory = plan.plan
    wrong = []
    planned = 0
    for buffer, offset in zip(memory.buffers, memory.offsets, strict=True):
        if buffer.tensor < 0:
            continue
        planned += 1
        if real.get(buffer.tensor) != offset:
            wrong.append(f"{buffer.name!r} at {real.get(buffer.tensor)} not {offset}")
    source = "offline plan" if memory.offline else "greedy planner"
    if wrong:
        report.add(Check("tensor offsets", label, FAIL, f"{len(wrong)} of {planned} tensors "
                         f"elsewhere than our {source} predicts: {'; '.join(wrong[:3])}",
                         {"planned": planned, "wrong": len(wrong)}))
        return
    report.add(Check("tensor offsets", label, PASS, f"all {planned} planned tensors at the "
                     f"offsets our {source} predicts", {"planned": planned, "wrong": 0}))


def pip_equality(outputs: list[np.ndarray], reference: list[np.ndarray] | None, label: str,
                 kernels: str) -> Check:
    if reference is None:
        return Check("outputs = pip interpreter", label, NOT_COMPARED,
                     "not compared, because the pip tflite-micro interpreter gave no outputs "
                     "(see its check)")
    equal = all(np.array_equal(a, b) for a, b in zip(outputs, reference, strict=True))
    lsb = max_lsb(outputs, reference)
    return Check("outputs = pip interpreter", label, PASS if equal else FAIL,
                 f"{len(outputs)} inputs: output bytes {'identical' if equal else 'differ'} "
                 f"(max {lsb} LSB, {kernels} kernels)",
                 {"inputs": len(outputs), "identical": equal, "max_lsb": lsb})


def litert_agreement(litert: list[np.ndarray] | str, reference: list[np.ndarray],
                     inputs: list[np.ndarray], detector: CentroidValues | None = None) -> Check:
    """LiteRT's outputs against the pip interpreter's: within :data:`MAX_LSB`. A detector's
    grid is judged by what is decoded from it (:func:`detector_litert_agreement`)."""
    name, build = "outputs vs LiteRT", "LiteRT x86-64"
    if isinstance(litert, str):
        return Check(name, build, NOT_COMPARED, f"not compared, because {litert}")
    if not reference:
        return Check(name, build, NOT_COMPARED, "not compared, because no TFLM output exists "
                     "to compare with")
    lsb = max_lsb(litert, reference)
    if detector is not None:
        return detector_litert_agreement(litert, reference, lsb, detector)
    top1 = sum(int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(litert, reference,
                                                                       strict=True))
    status = PASS if lsb <= MAX_LSB else FAIL
    return Check(name, build, status, f"{len(inputs)} inputs: max {lsb} LSB (bound {MAX_LSB}), "
                 f"top-1 identical on {top1} of {len(inputs)}",
                 {"inputs": len(inputs), "max_lsb": lsb, "bound_lsb": MAX_LSB,
                  "top1_identical": top1})


def detector_litert_agreement(litert: list[np.ndarray], reference: list[np.ndarray], lsb: int,
                              detector: CentroidValues) -> Check:
    """A per-cell softmax amplifies LiteRT's other rounding wherever two classes are close, so
    beyond :data:`MAX_LSB` a detector's grid only warns: the firmware runs TFLM, whose outputs
    the builds must equal byte for byte; how many inputs decode to the same centroids (class
    and box) on both says what the difference means on a Raspberry Pi."""
    shape = (1, detector.grid_height, detector.grid_width, detector.channels)
    spec = detector.spec()

    def centroids(output: np.ndarray) -> list[tuple[int, int, int, int, int]]:
        return [(r.channel, r.x0, r.y0, r.x1, r.y1)
                for r in decode_regions(np.asarray(output).reshape(shape), spec)]

    same = sum(centroids(a) == centroids(b) for a, b in zip(litert, reference, strict=True))
    status = PASS if lsb <= MAX_LSB else WARN
    return Check("outputs vs LiteRT", "LiteRT x86-64", status,
                 f"{len(litert)} inputs: max {lsb} LSB (bound {MAX_LSB}"
                 f"{'' if lsb <= MAX_LSB else '; a warning only for a per-cell softmax grid'}), "
                 f"the same centroids (class and box) on {same} of {len(litert)}",
                 {"inputs": len(litert), "max_lsb": lsb, "bound_lsb": MAX_LSB,
                  "centroids_identical": same})


def sections(firmware: Program, board: BoardProfile, label: str) -> Check:
    """.text + .data against the board's flash, .data + .bss against its RAM."""
    sizes = section_sizes(firmware)
    spec = board.mcu
    assert spec is not None
    flash = spec.region(spec.flash_region).length
    ram = spec.region(spec.arena_region).length - spec.reserved_ram
    used_flash, used_ram = sizes["text"] + sizes["data"], sizes["data"] + sizes["bss"]
    fits = used_flash <= flash and used_ram <= ram
    return Check("ELF sections", label, PASS if fits else FAIL,
                 f".text {sizes['text']:,} + .data {sizes['data']:,} = {used_flash:,} B of "
                 f"{flash:,} B flash; .data + .bss {sizes['bss']:,} = {used_ram:,} B of "
                 f"{ram:,} B RAM (after {spec.reserved_ram:,} B reserved)",
                 {**sizes, "flash": flash, "ram": ram})


def instruction_count(instructions: list[int], label: str) -> Check:
    if not instructions:
        return Check("instructions per inference", label, INFO, "no count (host build)")
    mean = sum(instructions) // len(instructions)
    return Check("instructions per inference", label, INFO,
                 f"{mean / 1e6:.1f} M instructions per inference (QEMU -icount, MPS2 TIMER0, "
                 f"{len(instructions)} inferences)", {"instructions": mean})


def max_lsb(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    return max((int(np.max(np.abs(x.astype(np.int64) - y.astype(np.int64))))
                for x, y in zip(a, b, strict=True)), default=0)
