"""``edge-export --verify``: the exported project on the real TFLite Micro, rung by rung.

1. the pip ``tflite-micro`` interpreter (x86-64, a child process): minimal arena against the
   prediction for its allocator classes, and its outputs, the reference the builds must equal;
2. LiteRT (a child process): outputs within :data:`MAX_LSB`;
3. per build (64-bit host; the board's CPU under QEMU, or a 32-bit host build where no emulator
   exists): the project's own files compiled against that TFLM. Checks: the firmware
   (``main.cpp`` + shim) allocates with the generated resolver and arena and streams the
   expected top-1 labels (a centroid detector: the Python decoder's records); the real minimal
   arena (bisection, a process per probe) against the prediction; every planned tensor at its
   predicted offset; outputs equal to the pip interpreter's; on Cortex-M the ELF sections
   against the board's budget and the instructions an inference executes.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.boards import BoardProfile
from edge.errors import BackendError, VerifyError
from edge.model.types import Model
from firmware_export.codegen.arena_h import arena_h, arena_values
from firmware_export.codegen.detector import CentroidValues
from firmware_export.plan.abi import get_abi
from firmware_export.plan.arena import ArenaPlan, plan_arena
from firmware_export.tflm.build import build_library
from firmware_export.tflm.tree import TflmTree
from firmware_export.verify import checks
from firmware_export.verify.builds import BuildSpec, plan_builds
from firmware_export.verify.children import litert_outputs, pip_minimum, pip_outputs
from firmware_export.verify.programs import build_project
from firmware_export.verify.report import FAIL, INFO, NOT_COMPARED, PASS, Check, VerifyReport

log = logging.getLogger(__name__)

N_INPUTS = 3
QEMU_CAPACITY = 3 << 20  # the MPS2 boards' 4 MB of RAM, less stack and the program


def sample_inputs(model: Model, count: int = N_INPUTS, seed: int = 0) -> list[np.ndarray]:
    """Random inputs over the whole range of the model's input type (seeded)."""
    tensor = model.input_tensors[0]
    rng = np.random.default_rng(seed)
    if tensor.dtype in ("int8", "uint8", "int16"):
        info = np.iinfo(tensor.dtype)
        return [rng.integers(info.min, info.max + 1, tensor.shape).astype(tensor.dtype)
                for _ in range(count)]
    return [rng.uniform(-1, 1, tensor.shape).astype(tensor.dtype) for _ in range(count)]


def verify_export(model: Model, model_path: Path, project: Path, board: BoardProfile,
                  trees: Sequence[TflmTree], exported: ArenaPlan,
                  untiled: bytes | None = None, detector: CentroidValues | None = None,
                  inputs: Sequence[np.ndarray] | None = None) -> VerifyReport:
    """Run every rung for the project exported at ``project``.

    ``untiled``: with ``--patch``, the model before the rewrite; the pip rung then checks the
    tiled outputs byte-identical to it (and every build must equal the pip outputs).
    ``detector``: the project is a centroid detector's; its streamed records are compared with
    the Python decoder's. ``inputs``: the input tensors to run (default :func:`sample_inputs`).

    Raises:
        VerifyError: a step failed in a way that is not a check's answer (a crash outside
            the arena bisection, a missing tool).
        BackendError: the pip interpreter is not installed.
    """
    report = VerifyReport()
    inputs = list(inputs) if inputs is not None else sample_inputs(model)
    reference = _pip_rung(report, model, model_path, inputs)
    if untiled is not None and reference is not None:
        report.add(_untiled_equality(untiled, inputs, reference))
    litert = litert_outputs(model_path, inputs)
    specs, notes = plan_builds(board, trees)
    report.notes.extend(notes)
    if not specs:
        report.notes.append("no TFLM tree: pass --tflm DIR or set EDGE_TFLM_DIR to verify on "
                            "real TFLM builds")
    for spec in specs:
        try:
            _build_rung(report, spec, model, project, board, exported, inputs, reference,
                        detector)
        except VerifyError as e:
            raise VerifyError(f"{model.source} on {spec.label}: {e}") from e
    report.add(checks.litert_agreement(litert, reference or [], inputs, detector))
    return report


def _pip_rung(report: VerifyReport, model: Model, path: Path,
              inputs: list[np.ndarray]) -> list[np.ndarray] | None:
    predicted = plan_arena(model, 8, "reference", abi=get_abi("pip"))
    try:
        measured = pip_minimum(path, predicted.size, low=predicted.plan.head)
        outputs = pip_outputs(path, max(predicted.size, measured), inputs)
    except (BackendError, VerifyError) as e:
        # The pip package is a reference, not the firmware: its crash or refusal is no verdict
        # on the model (the builds below give that); it only leaves nothing to compare with.
        report.add(Check("pip interpreter", "pip x86-64", NOT_COMPARED, f"not compared, "
                         f"because {e}"))
        return None
    report.add(checks.arena_ratio("minimal arena", "pip x86-64 (reference)", predicted.minimum,
                                  measured, predicted.size))
    return outputs


def _untiled_equality(untiled: bytes, inputs: list[np.ndarray],
                      tiled: list[np.ndarray]) -> Check:
    """The patch rewrite's promise: the same output bytes as the model before it."""
    from edge.model import read_model

    with tempfile.TemporaryDirectory(prefix="edge-verify-") as work:
        path = Path(work) / "untiled.tflite"
        path.write_bytes(untiled)
        arena = plan_arena(read_model(untiled), 8, "reference", abi=get_abi("pip")).size
        outputs = pip_outputs(path, arena, inputs)
    equal = all(np.array_equal(a, b) for a, b in zip(outputs, tiled, strict=True))
    return Check("tiled = untiled model", "pip x86-64", PASS if equal else FAIL,
                 f"{len(inputs)} inputs: output bytes of the patched model "
                 f"{'identical to' if equal else 'DIFFER from'} the untiled model's "
                 "(every build below must equal the pip interpreter's)",
                 {"inputs": len(inputs), "identical": equal})


def _build_rung(report: VerifyReport, spec: BuildSpec, model: Model, project: Path,
                board: BoardProfile, exported: ArenaPlan, inputs: list[np.ndarray],
                reference: list[np.ndarray] | None, detector: CentroidValues | None) -> None:
    library = build_library(spec.tree, spec.target, model.opcodes)  # the resolver's kernels
    plan = plan_arena(model, spec.abi.pointer_size, spec.tree.kernels, exported.margin,
                      abi=spec.abi)
    work = Path(tempfile.mkdtemp(prefix="edge-verify-"))
    try:
        source = _project_for(project, plan, exported, spec, model, work)
        capacity = min(QEMU_CAPACITY, 2 * plan.size + (64 << 10))
        built = build_project(source, library, capacity)
        label = spec.label
        if spec.note:
            report.add(Check("target", label, INFO, spec.note))
        real = checks.minimum_vs_prediction(report, built, plan, label)
        arena = max(plan.size, real)
        outputs, instructions = checks.run_outputs(built, arena, model, inputs, work)
        checks.firmware_stream(report, built, model, inputs, outputs, work, label, detector)
        checks.offsets(report, built, plan, arena, label)
        report.add(checks.pip_equality(outputs, reference, label, spec.tree.kernels))
        if spec.target.is_arm:
            report.add(checks.sections(built.firmware, board, label))
            report.add(checks.instruction_count(instructions, label))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _project_for(project: Path, plan: ArenaPlan, exported: ArenaPlan, spec: BuildSpec,
                 model: Model, work: Path) -> Path:
    """The project as exported, or (other ABI / kernels) a copy whose arena.h is planned for
    this build."""
    if spec.board_build and plan.size == exported.size:
        return project
    copy = work / "project"
    shutil.copytree(project / "src", copy / "src")
    (copy / "src" / "arena.h").write_text(arena_h(arena_values(plan), Path(model.source).name,
                                                   spec.label),
                                          encoding="utf-8")
    return copy


def failure_line(report: VerifyReport, model: str) -> str:
    first = report.failed[0]
    return (f"--verify failed on {model}: {first.name} on {first.build}: {first.detail}"
            if report.failed else "")


__all__ = ["FAIL", "PASS", "VerifyError", "failure_line", "sample_inputs", "verify_export"]
