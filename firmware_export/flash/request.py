"""One edge-flash request, end to end: read inputs, build the image, plan, write files, run.

The CLI fills a :class:`FlashRequest` and calls :func:`flash`; everything it prints comes from
the returned :class:`FlashResult`.
"""

from __future__ import annotations

import getpass
import importlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.boards import BoardProfile, get_board
from edge.errors import FlashError, LabelError, ModelError
from firmware_export.flash import image as model_image
from firmware_export.flash import plan as planner
from firmware_export.flash import ports, tools, uf2

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
    work_dir: Path | None = None  # where image files go before flashing


@dataclass(frozen=True)
class FlashResult:
    """What was (or, for a dry run, would be) written and run."""

    plan: planner.FlashPlan
    image_size: int | None = None
    arena_size: int | None = None
    label_count: int | None = None
    written: tuple[Path, ...] = field(default=())
    flashed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**self.plan.to_json(), "image_size": self.image_size,
                "arena_size": self.arena_size, "label_count": self.label_count,
                "written": [str(p) for p in self.written], "flashed": self.flashed}


def default_work_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"edge-flash-{getpass.getuser()}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and a rename, so no half file remains.

    Raises:
        FlashError: the folder cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise FlashError(f"cannot write {path}: {e}") from e


def read_labels(path: Path) -> list[str]:
    """One label per line; trailing blank lines are dropped.

    Raises:
        LabelError: the file is missing or not UTF-8.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LabelError(f"{path}: cannot read labels: {e}") from e
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def read_model(path: Path) -> bytes:
    """The model file's bytes, minimally checked (see :func:`image.check_model`).

    Raises:
        ModelError: missing, unreadable, or not a .tflite file.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"{path}: cannot read model: {e.strerror or e}") from e
    model_image.check_model(data, str(path))
    return data


def resolve_arena_size(arena_size: int | None, model: bytes, board: BoardProfile) -> int:
    """The arena size for the header: given, or predicted by edge-export's planner.

    The prediction is ``firmware_export.plan.plan_arena(edge.model.read_model(model),
    pointer_size, kernels).size`` for the board, the same ``kTensorArenaSize`` edge-export writes
    into ``arena.h``; both are imported only when needed.

    Raises:
        FlashError: an out-of-range size, or no planner to predict it.
        ModelError: the full model reader refuses the model.
    """
    if arena_size is not None:
        if not 0 < arena_size < 2**32:
            raise FlashError(f"--arena-size (={arena_size}) must be in [1...{2**32 - 1}]")
        return arena_size
    try:
        plan_module = importlib.import_module("firmware_export.plan")
        reader = importlib.import_module("edge.model")
    except ImportError as e:
        raise FlashError("pass --arena-size N (kTensorArenaSize from the exported arena.h); "
                         f"edge-export's planner is not available to predict it ({e})") from e
    mcu = planner.mcu_of(board)
    plan = plan_module.plan_arena(reader.read_model(model, "model"),
                                  pointer_size=mcu.pointer_size, kernels=mcu.kernels)
    log.info("arena size %d predicted by edge-export's planner (%s kernels)", plan.size,
             mcu.kernels)
    return int(plan.size)


def find_firmware(path: Path) -> planner.FirmwareFiles:
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
    return planner.FirmwareFiles(project=project, app=app, bootloader=first("bootloader.bin"),
                                 partitions=first("partitions.bin"),
                                 boot_app0=first("boot_app0.bin"))


def flash(request: FlashRequest) -> FlashResult:
    """Carry out a request (or, with ``dry_run``, only plan it).

    Raises:
        BoardError: unknown board.
        ModelError, LabelError: unusable inputs.
        FlashError: image too large for the slot, no port, port busy, a tool failed or missing.
        BackendError: esptool is missing.
    """
    board = get_board(request.board, request.boards_dirs, kind="mcu")
    if request.model is None and request.firmware is None:
        raise FlashError("nothing to flash: give a MODEL, --firmware BUILD, or both")
    image = None
    if request.model is not None:
        model = read_model(request.model)
        labels = read_labels(request.labels) if request.labels else []
        arena = resolve_arena_size(request.arena_size, model, board)
        image = model_image.build_image(model, labels, arena, board.name)
        planner.check_fits(board, len(image))
        log.info("model image: %d bytes (model %d, %d labels), arena %d", len(image), len(model),
                 len(labels), arena)
    files, plan = _plan(request, board, image)
    written = () if request.dry_run else tuple(files)
    if request.output is not None and request.firmware is not None and not request.dry_run:
        written += (request.output,)
    for path, data in files.items():
        if not request.dry_run:
            write_atomic(path, data)
    if not request.dry_run:
        tools.run_plan(plan)
    header = model_image.unpack_header(image) if image is not None else None
    return FlashResult(plan=plan, image_size=None if image is None else len(image),
                       arena_size=header.arena_size if header else None,
                       label_count=header.label_count if header else None, written=written,
                       flashed=not request.dry_run and request.output is None)


def _plan(request: FlashRequest, board: BoardProfile, image: bytes | None
          ) -> tuple[dict[Path, bytes], planner.FlashPlan]:
    """Files to write (path -> bytes) and the plan to run after writing them."""
    work = request.work_dir or default_work_dir()
    port: str | None = request.port
    drive: Path | None = None
    if request.port and Path(request.port).is_dir():
        port, drive = None, Path(request.port)
    elif not port and board.mcu and board.mcu.flash_tool in planner.UF2_VOLUMES:
        drive = ports.find_uf2_drive(planner.UF2_VOLUMES[board.mcu.flash_tool])
    files: dict[Path, bytes] = {}
    image_path = None
    if image is not None:
        image_path = work / f"model-{board.name}.img"
        files[image_path] = image
    firmware = find_firmware(request.firmware) if request.firmware else None
    if request.output is not None:
        return _plan_output(request.output, board, image, image_path, firmware, files)
    steps: list[planner.Step] = []
    plan_files: list[tuple[Path, str]] = []
    if firmware is not None:
        fw_plan = planner.plan_firmware(board, firmware, port, tools.have_program("pio"), drive)
        steps += fw_plan.steps
    if image is not None and image_path is not None:
        target = planner.ModelTarget(image=image_path, image_size=len(image))
        if board.mcu and board.mcu.uf2_family is not None and \
                board.mcu.flash_tool in planner.UF2_VOLUMES:
            uf2_path = image_path.with_suffix(".uf2")
            files[uf2_path] = uf2_bytes(board, image)
            target = planner.ModelTarget(image_path, len(image), uf2_path, drive)
        model_plan = planner.plan_model(board, target, port)
        steps += model_plan.steps
        plan_files += model_plan.files
    return files, planner.FlashPlan(board.name, request.port, tuple(steps), tuple(plan_files))


def uf2_bytes(board: BoardProfile, image: bytes) -> bytes:
    """The model image as UF2 blocks at the board's slot, with its family ID."""
    slot = planner.slot_of(board)
    family = board.mcu.uf2_family if board.mcu else None
    return uf2.to_uf2(image, slot.address, family)


def _plan_output(output: Path, board: BoardProfile, image: bytes | None, image_path: Path | None,
                 firmware: planner.FirmwareFiles | None, files: dict[Path, bytes]
                 ) -> tuple[dict[Path, bytes], planner.FlashPlan]:
    """``--output``: write the image (or its UF2), or merge firmware + image, without flashing."""
    if firmware is not None:
        partial = output.with_name(f".{output.name}.partial")
        steps = (planner.plan_merged_image(board, firmware, image_path, partial),
                 planner.Step("move", (str(partial), str(output)),
                              "move the merged image into place"))
        inputs = tuple((path, "model image") for path in files)
        return files, planner.FlashPlan(board.name, None, steps, inputs)
    assert image is not None
    if output.suffix.lower() == ".uf2":
        data, what = uf2_bytes(board, image), "model image as UF2 at the model slot"
    else:
        data, what = image, "model image"
    return {output: data}, planner.FlashPlan(board.name, None, (), ((output, what),))
