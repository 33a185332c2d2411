"""Turn a flashing request into steps: which tool, which arguments, which addresses.

Everything here is pure: the steps are what ``edge-flash --dry-run`` prints and what
:mod:`firmware_export.flash.tools` runs, and building them touches no tool, port or file.
One table per flow maps a board's ``flash_tool`` to the function that builds its steps.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.boards import BoardProfile, FlashSlot, McuSpec
from edge.errors import FlashError

ESPTOOL_BAUD = 921600

UF2_VOLUMES = {"picotool": "RPI-RP2"}

# ESP32-S3 Arduino/ESP-IDF layout: second-stage bootloader, partition table, OTA data, app.
ESP32S3_OFFSETS = {"bootloader": 0x0, "partitions": 0x8000, "boot_app0": 0xE000, "app": 0x10000}

DISPLAY_NAMES = {"uf2-copy": "copy", "move": "mv"}


@dataclass(frozen=True)
class Step:
    """One run of a flashing tool (or one file copy), with what it does in words."""

    tool: str
    args: tuple[str, ...]
    what: str
    address: int | None = None
    serial_port: str | None = None  # checked to exist and be free before the step runs
    touch_port: str | None = None  # open at 1200 baud first (Arduino bootloader entry)

    def command(self) -> str:
        """The command line, as a user could type it."""
        return shlex.join((DISPLAY_NAMES.get(self.tool, self.tool), *self.args))


@dataclass(frozen=True)
class FlashSteps:
    """Files to write, then steps to run, for one board."""

    board: str
    port: str | None
    steps: tuple[Step, ...]
    files: tuple[tuple[Path, str], ...] = field(default=())  # (path, what) written first
    temporaries: tuple[Path, ...] = field(default=())  # removed after the run, failed or not

    def lines(self) -> list[str]:
        """What ``--dry-run`` prints: every file, address and command."""
        out = [f"board {self.board}" + (f", port {self.port}" if self.port else "")]
        out += [f"write {path}  ({what})" for path, what in self.files]
        for number, step in enumerate(self.steps, 1):
            where = f" at {step.address:#010x}" if step.address is not None else ""
            out.append(f"step {number}: {step.what}{where}")
            if step.touch_port:
                out.append(f"  touch {step.touch_port} at 1200 baud (enter the bootloader)")
            out.append(f"  $ {step.command()}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "port": self.port,
            "files": [{"path": str(p), "what": w} for p, w in self.files],
            "steps": [{"tool": s.tool, "args": list(s.args), "command": s.command(),
                       "what": s.what,
                       "address": None if s.address is None else f"{s.address:#010x}",
                       "serial_port": s.serial_port, "touch_port": s.touch_port}
                      for s in self.steps],
        }


@dataclass(frozen=True)
class ModelTarget:
    """Where a model-only update goes and how it reaches the board."""

    image: Path
    image_size: int
    uf2: Path | None = None  # for boards flashed through UF2
    uf2_drive: Path | None = None  # a mounted boot drive to copy the UF2 to
    fallback: bool = True  # the firmware's layout: False for edge-export --fallback none


def _target(board: BoardProfile) -> str:
    """The tool's name for the chip (esptool --chip, pyocd --target, teensy --mcu)."""
    return mcu_of(board).tool_target or board.name


def mcu_of(board: BoardProfile) -> McuSpec:
    if board.mcu is None:
        raise FlashError(f"board {board.name} is not a microcontroller board")
    return board.mcu


def slot_of(board: BoardProfile, fallback: bool = True) -> FlashSlot:
    """The board's model slot, for firmware with an embedded fallback model or without one
    (``--fallback none``: the slot then spans the model part too).

    Raises:
        FlashError: the board profile reserves none.
    """
    slot = mcu_of(board).slot_region(True, fallback)
    if slot is None:
        raise FlashError(f"board {board.name} has no slot part in the flash map of "
                         f"{board.source}; model-only updates need one (or re-export the "
                         "firmware with the model)")
    return slot


def check_fits(board: BoardProfile, image_size: int, fallback: bool = True) -> None:
    """Refuse an image larger than the board's model slot, saying by how much and, when the
    slot of firmware without a fallback model would hold it, that layout.

    Raises:
        FlashError: no slot, or the image does not fit.
    """
    slot = slot_of(board, fallback)
    if image_size > slot.length:
        whole = slot_of(board, fallback=False)
        helps = ("; or export the firmware with --model-slot --fallback none (its slot holds "
                 f"{whole.length:,} bytes) and flash with --fallback none"
                 if fallback and image_size <= whole.length else "")
        raise FlashError(f"model image is {image_size:,} bytes, larger than {board.name}'s model "
                         f"slot ({slot.length:,} bytes at {slot.address:#x}) by "
                         f"{image_size - slot.length:,} bytes; use a smaller model{helps}")


def require_port(board: BoardProfile, port: str | None) -> str:
    if not port:
        raise FlashError(f"no port: {board.name} is flashed with {mcu_of(board).flash_tool} over "
                         "a serial port; pass --port (edge-flash --list-ports shows them)")
    return port


def model_steps(board: BoardProfile, target: ModelTarget, port: str | None) -> FlashSteps:
    """Steps that write a model image into the board's model slot.

    Raises:
        FlashError: no slot, image too large, no port where one is needed, or a board whose
            tool cannot write just the slot.
    """
    check_fits(board, target.image_size, target.fallback)
    tool = mcu_of(board).flash_tool
    builder = MODEL_STEPS.get(tool)
    if builder is None:
        raise FlashError(f"board {board.name}: no model-only update with flash_tool {tool!r}; "
                         f"known: {', '.join(sorted(MODEL_STEPS))}")
    steps, files = builder(board, target, port)
    return FlashSteps(board=board.name, port=port, steps=tuple(steps), files=tuple(files))


_Built = tuple[list[Step], list[tuple[Path, str]]]


def _image_file(board: BoardProfile, target: ModelTarget) -> tuple[Path, str]:
    slot = slot_of(board, target.fallback)
    return target.image, (f"model image, {target.image_size:,} of {slot.length:,} slot bytes "
                          f"at {slot.address:#x}")


def _model_esptool(board: BoardProfile, target: ModelTarget, port: str | None) -> _Built:
    slot = slot_of(board, target.fallback)
    args = ("--chip", _target(board), "--port",
            require_port(board, port), "--baud", str(ESPTOOL_BAUD), "write-flash",
            f"{slot.address:#x}", str(target.image))
    step = Step("esptool", args, "write the model image into the model slot", slot.address,
                serial_port=port)
    return [step], [_image_file(board, target)]


def _model_uf2(board: BoardProfile, target: ModelTarget, port: str | None) -> _Built:
    slot = slot_of(board, target.fallback)
    mcu = mcu_of(board)
    if target.uf2 is None or mcu.uf2_family is None:
        raise FlashError(f"board {board.name}: a UF2 file and uf2_family are needed for "
                         f"{mcu.flash_tool}")
    files = [_image_file(board, target),
             (target.uf2, f"the model image as UF2, family {mcu.uf2_family:#010x}")]
    if target.uf2_drive is not None:
        step = Step("uf2-copy", (str(target.uf2), str(target.uf2_drive)),
                    f"copy the UF2 to the boot drive {target.uf2_drive}", slot.address)
    else:
        step = Step("picotool", ("load", "-f", "-v", str(target.uf2)),
                    "load the UF2 into the model slot, verify, reboot", slot.address)
    return [step], files


def _model_pyocd(board: BoardProfile, target: ModelTarget, port: str | None) -> _Built:
    slot = slot_of(board, target.fallback)
    args = ["flash", "--target", _target(board),
            "--base-address", f"{slot.address:#x}"]
    if port:
        args += ["--uid", port]
    args.append(str(target.image))
    step = Step("pyocd", tuple(args), "write the model image into the model slot (sector erase)",
                slot.address)
    return [step], [_image_file(board, target)]


def _model_bossac(board: BoardProfile, target: ModelTarget, port: str | None) -> _Built:
    slot = slot_of(board, target.fallback)
    mcu = mcu_of(board)
    offset = slot.address - mcu.region(mcu.flash_region).origin
    device = require_port(board, port)
    # No -e: erasing all would wipe the firmware; the bootloader erases the pages it writes.
    args = (f"--port={device}", "-U", "-i", f"--offset={offset:#x}", "-w", "-v", "-R",
            str(target.image))
    step = Step("bossac", args, "write the model image into the model slot", slot.address,
                serial_port=device, touch_port=device)
    return [step], [_image_file(board, target)]


def _model_teensy(board: BoardProfile, target: ModelTarget, port: str | None) -> _Built:
    raise FlashError(f"board {board.name}: model-only updates are not possible: the HalfKay "
                     "bootloader erases the whole flash before programming; export the firmware "
                     "with the model and flash it with --firmware")


MODEL_STEPS: Mapping[str, Callable[[BoardProfile, ModelTarget, str | None], _Built]] = {
    "esptool": _model_esptool,
    "picotool": _model_uf2,
    "pyocd": _model_pyocd,
    "bossac": _model_bossac,
    "teensy_loader_cli": _model_teensy,
}


@dataclass(frozen=True)
class FirmwareFiles:
    """The build outputs found for a firmware flash (any may be missing)."""

    project: Path | None = None  # a folder with platformio.ini
    app: dict[str, Path] = field(default_factory=dict)  # suffix ("bin", "uf2", ...) -> file
    bootloader: Path | None = None
    partitions: Path | None = None
    boot_app0: Path | None = None


def firmware_steps(board: BoardProfile, files: FirmwareFiles, port: str | None,
                  use_pio: bool = False, uf2_drive: Path | None = None) -> FlashSteps:
    """Steps that flash firmware with the board's own tool (or PlatformIO's upload).

    Args:
        use_pio: PlatformIO is installed and ``files.project`` is a project: use its upload.

    Raises:
        FlashError: no usable build output for this board's tool, or no port where needed.
    """
    if use_pio and files.project is not None:
        args = ["run", "-d", str(files.project), "-t", "upload"]
        if port:
            args += ["--upload-port", port]
        steps = [Step("pio", tuple(args), "build and upload the firmware with PlatformIO",
                      serial_port=port)]
    else:
        tool = mcu_of(board).flash_tool
        builder = FIRMWARE_STEPS.get(tool)
        if builder is None:
            raise FlashError(f"board {board.name}: unknown flash_tool {tool!r}; known: "
                             f"{', '.join(sorted(FIRMWARE_STEPS))}")
        steps = builder(board, files, port, uf2_drive)
    return FlashSteps(board=board.name, port=port, steps=tuple(steps))


def _need(board: BoardProfile, files: FirmwareFiles, *suffixes: str) -> tuple[str, Path]:
    for suffix in suffixes:
        if suffix in files.app:
            return suffix, files.app[suffix]
    found = ", ".join(str(p) for p in files.app.values()) or "none"
    raise FlashError(f"board {board.name} ({mcu_of(board).flash_tool}) needs a firmware "
                     f"{' or '.join('.' + s for s in suffixes)} file; found: {found}")


def _firmware_esptool(board: BoardProfile, files: FirmwareFiles, port: str | None,
                      uf2_drive: Path | None) -> list[Step]:
    args = ["--chip", _target(board), "--port",
            require_port(board, port), "--baud", str(ESPTOOL_BAUD), "write-flash"]
    for offset, path in esp_parts(board, files):
        args += [f"{offset:#x}", str(path)]
    return [Step("esptool", tuple(args), "write bootloader, partition table and application", 0,
                 serial_port=port)]


def esp_parts(board: BoardProfile, files: FirmwareFiles) -> list[tuple[int, Path]]:
    """(offset, file) of each ESP32 build output, in flash order."""
    _, app = _need(board, files, "bin")
    parts = [(ESP32S3_OFFSETS["bootloader"], files.bootloader),
             (ESP32S3_OFFSETS["partitions"], files.partitions),
             (ESP32S3_OFFSETS["boot_app0"], files.boot_app0),
             (ESP32S3_OFFSETS["app"], app)]
    return [(offset, path) for offset, path in parts if path is not None]


def merged_image_step(board: BoardProfile, files: FirmwareFiles, image: Path | None,
                      output: Path, fallback: bool = True) -> Step:
    """esptool's offline ``merge-bin``: firmware and model image in one full flash image.

    Raises:
        FlashError: not an esptool board, or no application .bin.
    """
    mcu = mcu_of(board)
    if mcu.flash_tool != "esptool":
        raise FlashError(f"board {board.name}: a merged flash image needs esptool "
                         f"(flash_tool is {mcu.flash_tool!r})")
    args = ["--chip", _target(board), "merge-bin", "-o", str(output)]
    for offset, path in esp_parts(board, files):
        args += [f"{offset:#x}", str(path)]
    if image is not None:
        args += [f"{slot_of(board, fallback).address:#x}", str(image)]
    return Step("esptool", tuple(args), f"merge firmware and model into {output}", 0)


def _firmware_picotool(board: BoardProfile, files: FirmwareFiles, port: str | None,
                       uf2_drive: Path | None) -> list[Step]:
    suffix, path = _need(board, files, "uf2", "elf", "bin")
    if uf2_drive is not None and suffix == "uf2":
        return [Step("uf2-copy", (str(path), str(uf2_drive)),
                     f"copy the firmware UF2 to the boot drive {uf2_drive}")]
    args = ["load", "-f", "-x", str(path)]
    origin = mcu_of(board).region(mcu_of(board).flash_region).origin
    if suffix == "bin":
        args += ["-t", "bin", "-o", f"{origin:#x}"]
    return [Step("picotool", tuple(args), "load the firmware and run it", origin)]


def _firmware_pyocd(board: BoardProfile, files: FirmwareFiles, port: str | None,
                    uf2_drive: Path | None) -> list[Step]:
    suffix, path = _need(board, files, "hex", "elf", "bin")
    args = ["flash", "--target", _target(board)]
    origin = mcu_of(board).region(mcu_of(board).flash_region).origin
    if suffix == "bin":
        args += ["--base-address", f"{origin:#x}"]
    if port:
        args += ["--uid", port]
    args.append(str(path))
    return [Step("pyocd", tuple(args), "write the firmware", origin)]


def _firmware_bossac(board: BoardProfile, files: FirmwareFiles, port: str | None,
                     uf2_drive: Path | None) -> list[Step]:
    _, path = _need(board, files, "bin")
    device = require_port(board, port)
    args = (f"--port={device}", "-U", "-i", "-e", "-w", "-v", str(path), "-R")
    return [Step("bossac", args, "erase, write and verify the firmware, then reset",
                 serial_port=device, touch_port=device)]


def _firmware_teensy(board: BoardProfile, files: FirmwareFiles, port: str | None,
                     uf2_drive: Path | None) -> list[Step]:
    _, path = _need(board, files, "hex")
    mcu = _target(board)
    return [Step("teensy_loader_cli", (f"--mcu={mcu}", "-w", "-v", str(path)),
                 "wait for the bootloader (press the button), write the firmware")]


FIRMWARE_STEPS: Mapping[
    str, Callable[[BoardProfile, FirmwareFiles, str | None, Path | None], list[Step]]
] = {
    "esptool": _firmware_esptool,
    "picotool": _firmware_picotool,
    "pyocd": _firmware_pyocd,
    "bossac": _firmware_bossac,
    "teensy_loader_cli": _firmware_teensy,
}
