"""The flashing tools: a registry, looked up lazily, and the code that runs flashing steps.

This is the only module that imports esptool or runs picotool, pyocd, bossac, PlatformIO or
teensy_loader_cli, and each only when a step names it. A missing tool raises one line saying
what to install: :class:`~edge.errors.BackendError` for a missing Python package (esptool),
:class:`~edge.errors.FlashError` for a missing program.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import BackendError, FlashError
from firmware_export.flash import ports
from firmware_export.flash.steps import FlashSteps, Step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlashTool:
    """How one flashing tool is reached: a Python package or a program on PATH."""

    name: str
    kind: str  # "python", "program", "copy" (to a UF2 drive) or "move" (a finished output)
    names: tuple[str, ...]  # the module, or the program names to look for
    install: str


TOOLS: dict[str, FlashTool] = {
    "esptool": FlashTool("esptool", "python", ("esptool",),
                       "pip install esptool (or pip install 'edge-labels[flash]')"),
    "picotool": FlashTool("picotool", "program", ("picotool",),
                        "install picotool from github.com/raspberrypi/picotool (or the Pico SDK), "
                        "or hold BOOTSEL and pass the RPI-RP2 drive as --port"),
    "uf2-copy": FlashTool("uf2-copy", "copy", (), ""),
    "move": FlashTool("move", "move", (), ""),
    "pyocd": FlashTool("pyocd", "program", ("pyocd",), "pip install pyocd"),
    "bossac": FlashTool("bossac", "program", ("bossac",),
                      "install Arduino's bossac (arduino-cli core install arduino:mbed_nano) "
                      "and put it on PATH"),
    "pio": FlashTool("pio", "program", ("pio", "platformio"), "pip install platformio"),
    "teensy_loader_cli": FlashTool("teensy_loader_cli", "program", ("teensy_loader_cli",),
                                 "apt install teensy-loader-cli"),
}


def tool_spec(tool: str) -> FlashTool:
    try:
        return TOOLS[tool]
    except KeyError:
        raise FlashError(f"unknown flashing tool {tool!r}; known: {', '.join(TOOLS)}") from None


def find_program(tool: str) -> str:
    """The path of a flashing program.

    Raises:
        FlashError: it is not on PATH; the message says what to install.
    """
    spec = tool_spec(tool)
    for name in spec.names:
        found = shutil.which(name)
        if found:
            return found
    raise FlashError(f"{spec.names[0]} not found on PATH; {spec.install}")


def have_program(tool: str) -> bool:
    """Whether a flashing program is on PATH (e.g. to prefer PlatformIO's upload)."""
    return any(shutil.which(name) for name in tool_spec(tool).names)


def import_esptool() -> Any:
    """esptool, imported on first use.

    Raises:
        BackendError: esptool is not installed.
    """
    try:
        return importlib.import_module("esptool")
    except ImportError as e:
        raise BackendError(f"esptool is not installed; {TOOLS['esptool'].install}") from e


def esptool_args(esptool: Any, args: Sequence[str]) -> list[str]:
    """esptool >= 5 spells commands with dashes (write-flash); older ones with underscores."""
    version = str(getattr(esptool, "__version__", "5"))
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 5
    if major >= 5:
        return list(args)
    return [a.replace("-", "_") if a in ("write-flash", "merge-bin") else a for a in args]


def run_esptool(args: Sequence[str]) -> None:
    """Run esptool in this process, as a library.

    Raises:
        BackendError: esptool is not installed.
        FlashError: esptool failed; its own message is included.
    """
    esptool = import_esptool()
    argv = esptool_args(esptool, args)
    log.debug("esptool %s", " ".join(argv))
    fatal = getattr(esptool, "FatalError", RuntimeError)
    try:
        # esptool reports progress on stdout; keep ours free for --json.
        with contextlib.redirect_stdout(sys.stderr):
            esptool.main(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            raise FlashError(f"esptool {' '.join(argv[:6])}... failed (exit {e.code})") from e
    except (fatal, OSError) as e:
        raise FlashError(f"esptool failed: {e}") from e


def run_program(tool: str, args: Sequence[str]) -> None:
    """Run a flashing program with its output going to our stdout/stderr.

    Raises:
        FlashError: not installed, or it exited with an error.
    """
    program = find_program(tool)
    log.debug("running %s %s", program, " ".join(args))
    result = subprocess.run([program, *args], check=False)
    if result.returncode != 0:
        raise FlashError(f"{tool} failed with exit code {result.returncode}; command: "
                         f"{' '.join([tool, *args])}")


def copy_to_drive(source: Path, drive: Path) -> None:
    """Copy a UF2 file onto a mounted UF2 boot drive.

    Raises:
        FlashError: the folder is not a UF2 drive, or the copy failed.
    """
    if not ports.is_uf2_drive(drive):
        raise FlashError(f"{drive} is not a mounted UF2 boot drive (no {ports.UF2_INFO_FILE}); "
                         "hold BOOTSEL while plugging the board in")
    try:
        shutil.copyfile(source, drive / source.name)
    except OSError as e:
        raise FlashError(f"copying {source} to {drive} failed: {e}") from e


def move_into_place(source: Path, target: Path) -> None:
    """Rename a finished output over its final name (same folder, so atomic).

    Raises:
        FlashError: the rename failed.
    """
    try:
        source.replace(target)
    except OSError as e:
        raise FlashError(f"cannot move {source} to {target}: {e}") from e


def run_step(step: Step) -> None:
    """Run one step: check its port, touch it if asked, then run its tool."""
    kind = tool_spec(step.tool).kind
    if kind == "program":
        find_program(step.tool)  # say what to install before touching the board
    elif kind == "python":
        import_esptool()
    if step.serial_port:
        ports.check_port(step.serial_port)
    if step.touch_port:
        ports.touch_1200(step.touch_port)
    if kind == "python":
        run_esptool(step.args)
    elif kind == "copy":
        copy_to_drive(Path(step.args[0]), Path(step.args[1]))
    elif kind == "move":
        move_into_place(Path(step.args[0]), Path(step.args[1]))
    else:
        run_program(step.tool, step.args)


def run_steps(steps: FlashSteps) -> None:
    """Run every step in order, stopping at the first failure.

    The steps' files must already be written.

    Raises:
        FlashError: a step failed (the message names it).
        BackendError: a Python flashing package is missing.
    """
    for number, step in enumerate(steps.steps, 1):
        log.info("step %d/%d: %s", number, len(steps.steps), step.what)
        run_step(step)
