"""``edge-export`` as a library: model -> validated -> plan -> budget -> firmware project.

The project is written into a temporary folder beside ``out`` and renamed into place, so a
failed export never leaves half a project behind.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edge.boards import BoardProfile, get_board
from edge.errors import ExportError
from edge.model import Model, read_model
from edge.model.compat import micro_support
from firmware_export.codegen.names import c_identifier, check_identifier
from firmware_export.codegen.project import IMAGE_HEADER, LABELS_HEADER, ExportContext, render_all
from firmware_export.codegen.resolver import unsupported_ops
from firmware_export.plan.abi import default_abi
from firmware_export.plan.arena import DEFAULT_MARGIN, ArenaPlan, plan_arena
from firmware_export.plan.budget import Budget, check_budget, mcu_spec
from firmware_export.plan.embed import with_metadata
from firmware_export.plan.offline import (
    METADATA_NAME,
    OfflinePlan,
    find_offline_plan,
    metadata_words,
)

log = logging.getLogger(__name__)

MARKER = ".edge-export"
MODEL_FILE = "model.tflite"
OFFLINE_CHOICES = ("auto", "off")


@dataclass(frozen=True)
class ExportResult:
    out: Path
    files: tuple[str, ...]
    model: Model  # as exported (with the offline plan if one was written)
    model_path: Path  # the exported .tflite inside ``out``
    arena: ArenaPlan
    budget: Budget
    offline: OfflinePlan | None

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "files": list(self.files),
                "arena": self.arena.breakdown(), "budget": self.budget.to_dict(),
                "offline_plan": None if self.offline is None else {
                    "strategy": self.offline.strategy, "head": self.offline.head,
                    "greedy_head": self.offline.greedy_head, "saving": self.offline.saving}}


def check_exportable(model: Model) -> None:
    """Refuse what TFLite Micro cannot run, with the reason and what to do.

    Raises:
        ExportError: Edge TPU / custom ops, uint8 hybrid models, operators without a kernel.
    """
    support = micro_support(model)
    if not support.runnable:
        raise ExportError(f"{model.source}: {support.reason}")
    missing = unsupported_ops(model.opcodes)
    if missing:
        raise ExportError(f"{model.source}: TFLite Micro has no kernel for "
                          f"{', '.join(missing)}; replace those operators before exporting")


def apply_offline_plan(model: Model, kernels: str, mode: str) -> tuple[Model, OfflinePlan | None]:
    """The model with a better-than-greedy plan written in, when ``mode`` is auto and one exists."""
    if mode not in OFFLINE_CHOICES:
        raise ExportError(f"--offline-plan (={mode!r}) must be one of {', '.join(OFFLINE_CHOICES)}")
    if mode == "off" or METADATA_NAME in model.metadata or len(model.subgraphs) != 1:
        return model, None
    plan = find_offline_plan(model, kernels)
    if plan is None:
        return model, None
    log.info("offline plan (%s order) saves %d B over TFLM's greedy plan", plan.strategy,
             plan.saving)
    content = with_metadata(model.content, METADATA_NAME, metadata_words(plan.offsets))
    return read_model(content, name=model.source), plan


def support_headers() -> dict[str, str]:
    """The C headers shipped in firmware_export/c that exist in this installation."""
    folder = resources.files("firmware_export") / "c"
    found = {}
    for name in (LABELS_HEADER, IMAGE_HEADER):
        entry = folder / name
        if entry.is_file():
            found[name] = entry.read_text(encoding="utf-8")
    if LABELS_HEADER not in found:
        raise ExportError(f"{LABELS_HEADER} is missing from the installation (firmware_export/c)")
    return found


def export_model(model_path: str | Path, board: str | BoardProfile, out: str | Path,
                 name: str | None = None, offline_plan: str = "auto",
                 margin: int = DEFAULT_MARGIN, boards_dirs: Iterable[str | Path] = ()
                 ) -> ExportResult:
    """Write the firmware project for ``model_path`` on ``board`` into ``out``.

    Raises:
        ModelError: the file is not a valid model.
        BoardError: unknown board or not a microcontroller.
        ExportError: the model cannot run on TFLite Micro, or ``out`` is not ours to replace.
        BudgetError: it does not fit the board (saying by how much and what would).
    """
    profile = board if isinstance(board, BoardProfile) else get_board(board, boards_dirs, "mcu")
    spec = mcu_spec(profile)
    source = Path(model_path)
    model = read_model(source)
    check_exportable(model)
    labels = model.labels or ()  # labels appended after the flatbuffer do not survive a rewrite
    model, offline = apply_offline_plan(model, spec.kernels, offline_plan)
    arena = plan_arena(model, spec.pointer_size, spec.kernels, margin,
                       abi=default_abi(spec.pointer_size, profile.cpu))
    budget = check_budget(profile, arena, len(model.content))
    identifier = check_identifier(name) if name else c_identifier(source.name)
    graph_input = model.input_tensors[0]
    ctx = ExportContext(identifier, source.name, model.content, tuple(model.opcodes), arena,
                        profile, graph_input.shape, graph_input.dtype, labels,
                        support_headers())
    files = render_all(ctx)
    target = Path(out)
    _write_project(target, files, model.content)
    return ExportResult(target, (*files, MODEL_FILE), model, target / MODEL_FILE, arena, budget,
                        offline)


def _write_project(out: Path, files: dict[str, str], model_bytes: bytes) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ExportError(f"{out} exists and was not made by edge-export; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
        (staging / MODEL_FILE).write_bytes(model_bytes)
        (staging / MARKER).write_text("generated by edge-export; replaced on re-export\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise ExportError(f"cannot write the project to {out}: {e}") from e
