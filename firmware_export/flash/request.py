"""One edge-flash request, end to end: read inputs, build the image, list steps, write, run.

The CLI fills a :class:`FlashRequest` and calls :func:`flash`; everything it prints comes from
the returned :class:`FlashResult`. The model goes through the project's one model reader and
edge-export's exportability and budget checks; the labels through the one labels reader; every
output through edge.outputs' atomic writer.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.boards import BoardProfile, get_board
from edge.errors import FlashError
from edge.model import Model, read_model
from edge.outputs import atomic_write_bytes, clean_stale_temps, temp_name
from edge.runtime.labels import read_labels
from firmware_export import image as model_image_codec
from firmware_export.flash import ports, tools, uf2
from firmware_export.flash import steps as flash_steps
from firmware_export.flash.exported import ExportedProject, read_project
from firmware_export.plan.budget import check_arena_fits
from firmware_export.plan.fit import check_exportable, plan_for_board

log = logging.getLogger(__name__)

FIRMWARE_SUFFIXES = ("uf2", "bin", "hex", "elf")


@dataclass(frozen=True)
class FlashRequest:
    """What the user asked for. ``model`` and/or ``firmware`` must be given."""

    board: str
    boards_dirs: tuple[str, ...] = ()
    model: Path | None = None
    labels: Path | None = None
    arena_size: int | None = None
    firmware: Path | None = None
    port: str | None = None
    output: Path | None = None  # write the image (.bin/.img or .uf2) or merged image; no flashing
    dry_run: bool = False
    work_dir: Path | None = None  # where images go before flashing (default: private, removed)
    fallback: str | None = None  # "embedded"/"none": the firmware's layout (default: --firmware's)


@dataclass(frozen=True)
class FlashResult:
    """What was (or, for a dry run, would be) written and run."""

    steps: flash_steps.FlashSteps
    image_size: int | None = None
    arena_size: int | None = None
    label_count: int | None = None
    written: tuple[Path, ...] = field(default=())
    flashed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**self.steps.to_json(), "image_size": self.image_size,
                "arena_size": self.arena_size, "label_count": self.label_count,
                "written": [str(p) for p in self.written], "flashed": self.flashed}


WORK_PREFIX = "edge-flash"
DRY_RUN_WORK = Path(tempfile.gettempdir()) / f".{WORK_PREFIX}.edge-tmp-PID-XXXXXXXX"


@contextlib.contextmanager
def private_work_dir(requested: Path | None) -> Iterator[Path]:
    """Where images go before flashing: ``requested``, or a private ``mkdtemp`` folder (0700).

    The private folder is removed when the block ends, whatever happens; its name carries the
    process id in edge.outputs' pattern, so one left by a ``kill -9`` is removed by the next run.
    """
    if requested is not None:
        yield requested
        return
    tmp = Path(tempfile.gettempdir())
    clean_stale_temps(tmp)
    work = Path(tempfile.mkdtemp(prefix=f"{temp_name(tmp / WORK_PREFIX).name}.", dir=tmp))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def resolve_arena_size(requested: int | None, model: Model, planned: int, board: BoardProfile,
                       firmware: ExportedProject | None) -> int:
    """The arena the image header claims: ``--arena-size`` or edge-export's ``planned``, checked.

    Raises:
        FlashError: out of range, or larger than the firmware's kTensorArenaSize (the firmware
            would refuse the image at boot).
        BudgetError: larger than the RAM the board leaves for the arena.
    """
    if requested is not None and not 0 < requested < 2**32:
        raise FlashError(f"--arena-size (={requested}) must be in [1...{2**32 - 1}]")
    if requested is not None and requested < planned:
        raise FlashError(
            f"--arena-size {requested:,} is below the {planned:,} B {model.source} needs on "
            f"{board.name} (edge-export's plan): the image would understate it and the "
            f"firmware's arena check could not refuse it; omit --arena-size or give at least "
            f"{planned:,}")
    arena = requested if requested is not None else planned
    check_arena_fits(board, arena, flash_steps.mcu_of(board).pointer_size)
    if firmware is not None and arena > firmware.arena_size:
        raise FlashError(
            f"{model.source} needs a tensor arena of {arena:,} B but the firmware in "
            f"{firmware.folder} has kTensorArenaSize {firmware.arena_size:,} B and would refuse "
            f"the image at boot; re-export the firmware for this model (edge-export MODEL "
            f"--board {board.name} --out {firmware.folder} --model-slot) or use a smaller model")
    return arena


def check_project(firmware: ExportedProject | None, board: BoardProfile, image: bool) -> None:
    """Refuse a project for another board, or a slot ``image`` for firmware without a slot.

    Firmware exported without ``--model-slot`` links its model into the slot's flash
    (:meth:`edge.boards.McuSpec.model_region`), so an image written there would overwrite it.

    Raises:
        FlashError: the project's board is not ``board``, or it has no slot for ``image``.
    """
    if firmware is None or firmware.board is None:
        return
    if firmware.board != board.name:
        raise FlashError(f"the firmware in {firmware.folder} was exported for {firmware.board}, "
                         f"not {board.name}; pass --board {firmware.board} or re-export it")
    check_manifest_matches(firmware, board)
    if image and firmware.model_slot is False:
        raise FlashError(f"the firmware in {firmware.folder} was exported without --model-slot: "
                         "its model fills the slot's flash; re-export it with --model-slot "
                         f"(edge-export MODEL --board {board.name} --out {firmware.folder} "
                         "--model-slot)")


def check_manifest_matches(firmware: ExportedProject, board: BoardProfile) -> None:
    """Refuse a manifest whose board identity or slot differ from what ``board`` gives.

    The firmware checks images against the identity and reads them from the slot it was built
    with; a manifest that disagrees with the profile (edited, or a profile changed since the
    export) would make edge-flash write an image the firmware never finds or refuses.

    Raises:
        FlashError: naming the field, both values and what to do.
    """
    if firmware.manifest is None:
        return
    expected_id = model_image_codec.board_id(board.name)
    if firmware.board_id != expected_id:
        raise FlashError(f"{firmware.manifest}: board_id {firmware.board_id:#010x} is not "
                         f"{board.name}'s ({expected_id:#010x}); the firmware would refuse the "
                         f"image: re-export the project for --board {board.name}")
    fallback = True if firmware.fallback is None else firmware.fallback
    part = flash_steps.mcu_of(board).slot_region(bool(firmware.model_slot), fallback)
    expected_slot = None if part is None else (part.address, part.length)
    if firmware.slot != expected_slot:
        raise FlashError(f"{firmware.manifest}: slot {_slot_text(firmware.slot)} differs from "
                         f"the {board.name} profile's {_slot_text(expected_slot)}; the firmware "
                         "reads images from its own slot: re-export the project with this "
                         "profile")


def _slot_text(slot: tuple[int, int] | None) -> str:
    return "none" if slot is None else f"{slot[1]:,} B at {slot[0]:#x}"


def check_output(output: Path | None) -> None:
    """Refuse an ``--output`` that names a folder or lies under a file (missing folders are
    made).

    Raises:
        FlashError: saying what to name instead.
    """
    if output is None:
        return
    if output.is_dir():
        raise FlashError(f"-o {output} is a folder; name the image file in it, e.g. "
                         f"{output / 'model.img'} (or model.uf2 for a UF2 board)")
    blocking = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise FlashError(f"-o {output}: {blocking} is a file, not a folder; choose another path")


def note_unchecked_slot(firmware: ExportedProject | None, board: BoardProfile,
                        fallback: bool = True) -> None:
    """After an image was written or planned without a manifest to check: say, once, what the
    firmware on the board must be for the image to be used."""
    if firmware is None or firmware.model_slot is None:
        export = "--model-slot" if fallback else "--model-slot --fallback none"
        log.warning("the firmware on %s must be exported with edge-export %s to boot from this "
                    "image (without it, its model fills the slot's flash)", board.name, export)


def resolve_fallback(requested: str | None, firmware: ExportedProject | None) -> bool:
    """Whether the firmware has an embedded fallback model (the slot's layout): what
    ``--fallback`` says, else the ``--firmware`` project's manifest, else yes.

    Raises:
        FlashError: ``--fallback`` contradicts the project's manifest.
    """
    known = firmware.fallback if firmware is not None else None
    if requested is None:
        return True if known is None else known
    wanted = requested == "embedded"
    if known is not None and known != wanted:
        actual = "embedded" if known else "none"
        raise FlashError(f"the firmware in {firmware.folder if firmware else '?'} was exported "
                         f"with --fallback {actual}, not {requested}; drop --fallback or "
                         "re-export the firmware")
    return wanted


def model_image(request: FlashRequest, board: BoardProfile,
                firmware: ExportedProject | None, fallback: bool = True) -> bytes:
    """The checked image for ``request.model``: read, exportable, within arena and slot.

    Raises:
        ModelError, LabelError: unusable model or labels.
        ExportError: TFLite Micro cannot run the model (Edge TPU, uint8 hybrid, custom ops).
        BudgetError, FlashError: the arena or the image does not fit.
    """
    assert request.model is not None
    model = read_model(request.model)
    check_exportable(model)
    labels = read_labels(request.labels) if request.labels else tuple(model.labels or ())
    model, _, plan = plan_for_board(model, board)  # what edge-export puts into the firmware
    # The slot first: a model too big for it needs another model whatever its arena.
    flash_steps.check_fits(board, len(model_image_codec.build_image(
        model.content, labels, plan.size, board.name)), fallback)
    arena = resolve_arena_size(request.arena_size, model, plan.size, board, firmware)
    image = model_image_codec.build_image(model.content, labels, arena, board.name)
    log.info("model image: %d bytes (model %d, %d labels), arena %d", len(image),
             len(model.content), len(labels), arena)
    return image


def find_firmware(path: Path) -> flash_steps.FirmwareFiles:
    """The build outputs in a file, a build folder or a PlatformIO project folder.

    Raises:
        FlashError: the path does not exist.
    """
    if not path.exists():
        raise FlashError(f"{path}: firmware file or build folder does not exist")
    if path.is_file():
        suffix = path.suffix.lstrip(".").lower()
        folders = [path.parent]
        app = {suffix: path}
    else:
        folders = [path, path / "build", *sorted((path / ".pio" / "build").glob("*"))]
        app = {}
        for folder in folders:
            for suffix in FIRMWARE_SUFFIXES:
                candidate = folder / f"firmware.{suffix}"
                if suffix not in app and candidate.is_file():
                    app[suffix] = candidate

    def first(name: str) -> Path | None:
        return next((f / name for f in folders if (f / name).is_file()), None)

    project = path if path.is_dir() and (path / "platformio.ini").is_file() else None
    return flash_steps.FirmwareFiles(project=project, app=app, bootloader=first("bootloader.bin"),
                                 partitions=first("partitions.bin"),
                                 boot_app0=first("boot_app0.bin"))


def flash(request: FlashRequest) -> FlashResult:
    """Carry out a request (or, with ``dry_run``, only plan it).

    Raises:
        BoardError: unknown board.
        ModelError, LabelError, ExportError, BudgetError: unusable inputs.
        FlashError: image too large for the slot or the firmware's arena, no port, port busy,
            a tool failed or missing.
        BackendError: esptool is missing.
    """
    board = get_board(request.board, request.boards_dirs, kind="mcu")
    if request.model is None and request.firmware is None:
        raise FlashError("nothing to flash: give a MODEL, --firmware BUILD, or both")
    check_output(request.output)
    project = read_project(request.firmware) if request.firmware else None
    check_project(project, board, request.model is not None)
    fallback = resolve_fallback(request.fallback, project)
    image = (model_image(request, board, project, fallback) if request.model is not None
             else None)
    if request.dry_run:
        _, steps = _steps(request, board, image, request.work_dir or DRY_RUN_WORK, fallback)
        if image is not None:
            note_unchecked_slot(project, board, fallback)
        return _result(steps, image, (), flashed=False)
    with private_work_dir(request.work_dir) as work:
        files, steps = _steps(request, board, image, work, fallback)
        try:
            for path, data in files.items():
                atomic_write_bytes(path, data)
            tools.run_steps(steps)
        finally:
            for temporary in steps.temporaries:
                temporary.unlink(missing_ok=True)
    if image is not None:
        note_unchecked_slot(project, board, fallback)
    written = tuple(p for p in files if not p.is_relative_to(work))
    if any(step.tool == "move" for step in steps.steps) and request.output is not None:
        written += (request.output,)
    return _result(steps, image, written, flashed=request.output is None)


def _result(steps: flash_steps.FlashSteps, image: bytes | None, written: tuple[Path, ...],
            flashed: bool) -> FlashResult:
    header = model_image_codec.unpack_header(image) if image is not None else None
    return FlashResult(steps=steps, image_size=None if image is None else len(image),
                       arena_size=header.arena_size if header else None,
                       label_count=header.label_count if header else None, written=written,
                       flashed=flashed)


def _steps(request: FlashRequest, board: BoardProfile, image: bytes | None, work: Path,
           fallback: bool = True) -> tuple[dict[Path, bytes], flash_steps.FlashSteps]:
    """Files to write (path -> bytes) and the steps to run after writing them."""
    port: str | None = request.port
    drive: Path | None = None
    if request.port and Path(request.port).is_dir():
        port, drive = None, Path(request.port)
    elif not port and board.mcu and board.mcu.flash_tool in flash_steps.UF2_VOLUMES:
        drive = ports.find_uf2_drive(flash_steps.UF2_VOLUMES[board.mcu.flash_tool])
    files: dict[Path, bytes] = {}
    image_path = None
    if image is not None:
        image_path = work / f"model-{board.name}.img"
        files[image_path] = image
    firmware = find_firmware(request.firmware) if request.firmware else None
    if request.output is not None:
        return _output_steps(request.output, board, image, image_path, firmware, files,
                             fallback)
    steps: list[flash_steps.Step] = []
    step_files: list[tuple[Path, str]] = []
    if firmware is not None:
        firmware_steps = flash_steps.firmware_steps(board, firmware, port,
                                                    tools.have_program("pio"), drive)
        steps += firmware_steps.steps
    if image is not None and image_path is not None:
        target = flash_steps.ModelTarget(image=image_path, image_size=len(image),
                                         fallback=fallback)
        if board.mcu and board.mcu.uf2_family is not None and \
                board.mcu.flash_tool in flash_steps.UF2_VOLUMES:
            uf2_path = image_path.with_suffix(".uf2")
            files[uf2_path] = uf2_bytes(board, image, fallback)
            target = flash_steps.ModelTarget(image_path, len(image), uf2_path, drive, fallback)
        model_steps = flash_steps.model_steps(board, target, port)
        steps += model_steps.steps
        step_files += model_steps.files
    return files, flash_steps.FlashSteps(board.name, request.port, tuple(steps), tuple(step_files))


def uf2_bytes(board: BoardProfile, image: bytes, fallback: bool = True) -> bytes:
    """The model image as UF2 blocks at the board's slot, with its family ID."""
    slot = flash_steps.slot_of(board, fallback)
    family = board.mcu.uf2_family if board.mcu else None
    return uf2.to_uf2(image, slot.address, family)


def _output_steps(output: Path, board: BoardProfile, image: bytes | None, image_path: Path | None,
                 firmware: flash_steps.FirmwareFiles | None, files: dict[Path, bytes],
                 fallback: bool = True) -> tuple[dict[Path, bytes], flash_steps.FlashSteps]:
    """``--output``: write the image (or its UF2), or merge firmware + image, without flashing.

    A merged image needs an esptool board and a built application; otherwise ``--firmware``
    only told edge-flash the project's arena, and the image is written alone.
    """
    mcu = flash_steps.mcu_of(board)
    if firmware is not None and (mcu.flash_tool == "esptool" or image is None) and (
            firmware.app or image is None):
        partial = temp_name(output)  # removed on failure; after a kill -9, by the next run
        steps = (flash_steps.merged_image_step(board, firmware, image_path, partial, fallback),
                 flash_steps.Step("move", (str(partial), str(output)),
                              "move the merged image into place"))
        inputs = tuple((path, "model image") for path in files)
        return files, flash_steps.FlashSteps(board.name, None, steps, inputs, (partial,))
    assert image is not None
    if output.suffix.lower() == ".uf2":
        data, what = uf2_bytes(board, image, fallback), "model image as UF2 at the model slot"
    else:
        data, what = image, "model image"
    return {output: data}, flash_steps.FlashSteps(board.name, None, (), ((output, what),))
