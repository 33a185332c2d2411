"""``edge-export`` as a library: model -> validated -> plan -> budget -> firmware project.

The project is written into a temporary folder beside ``out`` and renamed into place
(:func:`edge.outputs.atomic_directory`), so a failed export never leaves half a project behind
and one killed with ``kill -9`` leaves a temporary that the next run removes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edge.boards import BoardProfile, get_board
from edge.errors import ExportError
from edge.model import Model, read_model
from edge.model.labels import embedded_record
from edge.outputs import atomic_directory
from firmware_export.codegen.arena_h import arena_values
from firmware_export.codegen.detector import CENTROIDS_HEADER, CentroidValues, centroid_values
from firmware_export.codegen.libraries import PinnedLibrary, check_operators, library_for
from firmware_export.codegen.names import c_identifier, check_identifier
from firmware_export.codegen.project import (
    CRC_HEADER,
    LABELS_HEADER,
    SUPPORT_HEADERS,
    TFLM_LIB,
    FirmwareValues,
    board_values,
    render_all,
)
from firmware_export.codegen.tflm_sources import TflmSelection, choose_tree, select_files
from firmware_export.image import build_image
from firmware_export.patch.choose import DEFAULT_MAX_OVERHEAD, PatchChoice
from firmware_export.plan.arena import DEFAULT_MARGIN, ArenaPlan
from firmware_export.plan.budget import Budget, check_budget, float_weight_savings, mcu_spec
from firmware_export.plan.fit import check_exportable, patch_help, patch_model, plan_for_board
from firmware_export.plan.offline import OfflinePlan

log = logging.getLogger(__name__)

MARKER = ".edge-export"
MANIFEST = "edge-export.json"
MODEL_FILE = "model.tflite"
SLOT_IMAGE = "model_slot.img"


@dataclass(frozen=True)
class ExportResult:
    out: Path
    files: tuple[str, ...]
    model: Model  # as exported (with the offline plan if one was written)
    model_path: Path  # the exported .tflite inside ``out``
    arena: ArenaPlan
    budget: Budget
    offline: OfflinePlan | None
    slot_image: Path | None = None  # with --model-slot: the image edge-flash would write
    library: PinnedLibrary | None = None  # None: TFLM copied into the project (--tflm)
    patch: PatchChoice | None = None  # --patch: the tiles the model was rewritten into
    detector: CentroidValues | None = None  # a centroid detector: how main.cpp decodes it

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "files": list(self.files),
                "slot_image": None if self.slot_image is None else str(self.slot_image),
                "tflm": "copied into lib/tflm" if self.library is None else self.library.title,
                "arena": self.arena.breakdown(), "budget": self.budget.to_dict(),
                "offline_plan": None if self.offline is None else {
                    "strategy": self.offline.strategy, "head": self.offline.head,
                    "greedy_head": self.offline.greedy_head, "saving": self.offline.saving},
                "patch": None if self.patch is None else self.patch.to_dict(),
                "detector": None if self.detector is None else {
                    "grid": [self.detector.grid_height, self.detector.grid_width,
                             self.detector.channels],
                    "threshold": self.detector.threshold,
                    "threshold_q": self.detector.threshold_q,
                    "max_detections": self.detector.max_detections}}


def support_headers(detector: bool = False) -> dict[str, str]:
    """The C headers shipped in firmware_export/c that exist in this installation (a
    ``detector``'s firmware needs the centroid decoder's too)."""
    folder = resources.files("firmware_export") / "c"
    found = {}
    for name in SUPPORT_HEADERS:
        entry = folder / name
        if entry.is_file():
            found[name] = entry.read_text(encoding="utf-8")
    for name in (LABELS_HEADER, CRC_HEADER, *((CENTROIDS_HEADER,) if detector else ())):
        if name not in found:
            raise ExportError(f"{name} is missing from the installation (firmware_export/c)")
    return found


def firmware_values(model: Model, source_name: str, identifier: str, arena: ArenaPlan,
                    profile: BoardProfile, labels: tuple[str, ...], library: PinnedLibrary | None,
                    tflm_flags: tuple[str, ...], model_slot: bool, fallback: bool = True,
                    detector: CentroidValues | None = None) -> FirmwareValues:
    """The plain values the generators read, taken from the model, board and plan."""
    graph_input = model.input_tensors[0]
    return FirmwareValues(
        array_name=identifier, model_file=source_name, content=model.content,
        opcodes=tuple(model.opcodes), input_shape=tuple(graph_input.shape),
        input_dtype=graph_input.dtype, labels=labels, arena=arena_values(arena),
        board=board_values(profile, model_slot, fallback), library=library,
        tflm_flags=tflm_flags, model_slot=model_slot,
        headers=support_headers(detector is not None), fallback=fallback, detector=detector)


def export_model(model_path: str | Path, board: str | BoardProfile, out: str | Path,
                 name: str | None = None, offline_plan: str = "auto",
                 margin: int = DEFAULT_MARGIN, boards_dirs: Iterable[str | Path] = (),
                 tflm: str | Path | Sequence[str | Path] = (), model_slot: bool = False,
                 patch: str | tuple[int, int] = "off",
                 max_overhead: float = DEFAULT_MAX_OVERHEAD, fallback: bool = True
                 ) -> ExportResult:
    """Write the firmware project for ``model_path`` on ``board`` into ``out``.

    Args:
        tflm: TFLM source trees (one, or several: the one matching the board's kernels is
            used) to copy the files the model needs from, into lib/tflm/; without one,
            platformio.ini pins the board's library (libraries.toml).
        model_slot: build the firmware to boot from the model slot and write the slot image
            (``model_slot.img``) into the project.
        patch: ``off``, ``auto`` or a grid (rows, cols): rewrite the model's first stages to
            run tile by tile (:mod:`firmware_export.patch`) before planning.
        max_overhead: with ``auto``, the largest extra fraction of multiply-adds allowed.
        fallback: with ``model_slot``, also embed the model, run when the slot holds no valid
            image (``--fallback embedded``); False (``--fallback none``): no embedded model, the
            slot takes the model part's flash too.

    Raises:
        ModelError: the file is not a valid model.
        BoardError: unknown board or not a microcontroller.
        ExportError: the model cannot run on TFLite Micro or on the pinned library, or ``out``
            is not ours to replace.
        BudgetError: it does not fit the board (saying by how much and what would).
    """
    profile = board if isinstance(board, BoardProfile) else get_board(board, boards_dirs, "mcu")
    spec = mcu_spec(profile)
    source = Path(model_path)
    model = read_model(source)
    check_exportable(model)
    labels = model.labels or ()  # labels appended after the flatbuffer do not survive a rewrite
    detector = centroid_values(model, embedded_record(model.content))  # nor does the record
    original = model
    model, patched = patch_model(model, patch, profile, offline_plan, max_overhead)
    selection = library = None  # chosen for the operators the firmware runs (the tiles' too)
    trees = [tflm] if isinstance(tflm, (str, Path)) else list(tflm)
    if trees:
        selection = select_files(choose_tree(trees, spec.kernels), model.opcodes)
    else:
        library = library_for(spec.kernels)
        check_operators(library, model.opcodes)
    model, offline, arena = plan_for_board(model, profile, offline_plan, margin)
    slot_image = (build_image(model.content, labels, arena.size, profile.name)
                  if model_slot else None)
    arena_help = None
    if arena.size > spec.ram_for_arena and patched is None and patch == "off":
        arena_help = patch_help(original, profile, offline_plan, margin)
    budget = check_budget(profile, arena, len(model.content), slot_image,
                          quantize_saves=float_weight_savings(
                              [(t.dtype, len(t.data)) for t in model.main.tensors
                               if t.data is not None]), fallback=fallback,
                          arena_help=arena_help)
    identifier = check_identifier(name) if name else c_identifier(source.name)
    values = firmware_values(model, source.name, identifier, arena, profile, labels, library,
                             () if selection is None else selection.flags, model_slot,
                             fallback or not model_slot, detector)
    files = render_all(values)
    files[MANIFEST] = manifest_json(values, budget)
    target = Path(out)
    _write_project(target, files, model.content, selection, slot_image)
    names = (*files, MODEL_FILE, *((SLOT_IMAGE,) if slot_image else ()))
    return ExportResult(target, names, model, target / MODEL_FILE, arena, budget, offline,
                        None if slot_image is None else target / SLOT_IMAGE, library, patched,
                        detector)


def manifest_json(values: FirmwareValues, budget: Budget) -> str:
    """``edge-export.json``: what edge-flash reads of the project (arena, board, slot)."""
    board = values.board
    return json.dumps({
        "format": 1, "board": board.name, "board_id": board.board_id,
        "model_file": values.model_file, "model_bytes": len(values.content),
        "model_sha256": hashlib.sha256(values.content).hexdigest(),
        "tensor_arena_size": values.arena.size, "model_slot": values.model_slot,
        "fallback": ("embedded" if values.fallback else "none") if values.model_slot else None,
        "slot": None if board.slot is None else {"address": board.slot[0],
                                                 "length": board.slot[1]},
        "model_region": {"address": board.model_region[0], "length": board.model_region[1]},
        "tflm": "lib/tflm" if values.library is None else values.library.title,
        "budget": budget.to_dict()}, indent=2) + "\n"


def _write_project(out: Path, files: dict[str, str], model_bytes: bytes,
                   tflm: TflmSelection | None, slot_image: bytes | None) -> None:
    """Fill a temporary folder beside ``out`` and swap it in (edge.outputs.atomic_directory)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ExportError(f"{out} exists and was not made by edge-export; choose another --out")
    try:
        with atomic_directory(out) as staging:
            for relative, text in files.items():
                path = staging / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8", newline="\n")
            (staging / MODEL_FILE).write_bytes(model_bytes)
            if slot_image is not None:
                (staging / SLOT_IMAGE).write_bytes(slot_image)
            if tflm is not None:
                _copy_tflm(tflm, staging / TFLM_LIB)
            (staging / MARKER).write_text("generated by edge-export; replaced on re-export\n")
    except OSError as e:
        raise ExportError(f"cannot write the project to {out}: {e}") from e


def _copy_tflm(selection: TflmSelection, dest: Path) -> None:
    for relative in selection.files:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(selection.root / relative, target)
