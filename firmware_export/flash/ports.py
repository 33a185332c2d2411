"""Serial ports and UF2 boot drives: list them, match them to boards, check one is free.

This is the only module of edge-flash that imports pyserial, and only inside the functions that
need it. Matching ports to boards is pure (:func:`match_boards`) and tested on plain data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.boards import BoardProfile
from edge.errors import BoardError, FlashError

log = logging.getLogger(__name__)

UF2_INFO_FILE = "INFO_UF2.TXT"
_MOUNT_ROOTS = ("/media", "/run/media", "/mnt", "/Volumes")


@dataclass(frozen=True)
class DetectedPort:
    """A serial port seen on this machine, with the boards its USB VID:PID suggests."""

    device: str
    vid: int | None
    pid: int | None
    description: str
    boards: tuple[str, ...]

    @property
    def usb_id(self) -> str:
        """``VID:PID`` in upper-case hex, or an empty string for a non-USB port."""
        if self.vid is None or self.pid is None:
            return ""
        return f"{self.vid:04X}:{self.pid:04X}"


def parse_usb_id(text: str) -> tuple[int, int]:
    """``"303A:1001"`` -> ``(0x303A, 0x1001)``.

    Raises:
        BoardError: not two hex numbers of up to four digits separated by a colon.
    """
    parts = text.split(":")
    try:
        if len(parts) != 2 or not all(0 < len(p) <= 4 for p in parts):
            raise ValueError(text)
        return int(parts[0], 16), int(parts[1], 16)
    except ValueError as e:
        raise BoardError(f"usb_ids entry (={text!r}) must look like 'VID:PID' in hex, "
                         "e.g. '2E8A:000A'") from e


def match_boards(vid: int | None, pid: int | None,
                 boards: Mapping[str, BoardProfile]) -> tuple[str, ...]:
    """Names of the MCU boards whose ``usb_ids`` include ``vid:pid``, sorted."""
    if vid is None or pid is None:
        return ()
    return tuple(sorted(name for name, board in boards.items()
                        if board.mcu is not None
                        and (vid, pid) in {parse_usb_id(u) for u in board.mcu.usb_ids}))


def list_ports(boards: Mapping[str, BoardProfile]) -> list[DetectedPort]:
    """Serial ports on this machine, sorted by device name, each with its suggested boards.

    Raises:
        BackendError: pyserial is not installed.
    """
    comports = _comports()
    found = [DetectedPort(device=p.device, vid=p.vid, pid=p.pid,
                          description=p.description or "",
                          boards=match_boards(p.vid, p.pid, boards)) for p in comports]
    return sorted(found, key=lambda p: p.device)


def _comports() -> list[Any]:
    from edge.errors import BackendError

    try:
        from serial.tools import list_ports as serial_list_ports
    except ImportError as e:
        raise BackendError("listing serial ports needs pyserial; pip install pyserial") from e
    return list(serial_list_ports.comports())


def suggest(ports: Iterable[DetectedPort], board: str | None = None) -> list[DetectedPort]:
    """The detected ports that match any board (or the given one)."""
    return [p for p in ports if p.boards and (board is None or board in p.boards)]


def check_port(port: str) -> None:
    """Make sure ``port`` exists and nobody else has it open.

    A program holding the port (a serial monitor, ``edge-listen``) would make the flashing tool
    fail halfway with a confusing message; this says so up front.

    Raises:
        FlashError: the port does not exist, is busy, or cannot be opened.
    """
    if not os.path.exists(port):
        raise FlashError(f"port {port} does not exist; plug the board in, or see "
                         "edge-flash --list-ports")
    holders = _holders(port)
    if holders:
        raise FlashError(f"port {port} is busy: open in process {', '.join(holders)}; close "
                         "that program (serial monitor, edge-listen) and retry")
    try:
        import serial
    except ImportError:  # pragma: no cover - pyserial is a core dependency
        return
    try:
        with serial.Serial(port, exclusive=True):
            pass
    except serial.SerialException as e:
        if "exclusively lock" in str(e):
            raise FlashError(f"port {port} is busy: another program holds its lock; close "
                             "that program (serial monitor, edge-listen) and retry") from e
        raise FlashError(f"port {port} cannot be opened: {e}") from e

def _holders(port: str) -> list[str]:
    """``pid (name)`` of other processes with ``port`` open (Linux /proc; empty elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    target = os.path.realpath(port)
    holders = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
            if any(os.path.realpath(fd) == target for fd in fds):
                name = (entry / "comm").read_text(encoding="utf-8", errors="replace").strip()
                holders.append(f"{entry.name} ({name})")
        except OSError:
            continue
    return holders


def touch_1200(port: str) -> None:
    """Open and close ``port`` at 1200 baud: the Arduino way to enter the bootloader.

    Raises:
        FlashError: the port cannot be opened.
    """
    import serial

    try:
        with serial.Serial(port, baudrate=1200):
            pass
    except (serial.SerialException, OSError) as e:
        raise FlashError(f"port {port}: 1200-baud touch to enter the bootloader failed: {e}"
                         ) from e
    log.info("touched %s at 1200 baud to enter the bootloader", port)


def find_uf2_drive(volume: str, roots: Iterable[str | Path] = _MOUNT_ROOTS) -> Path | None:
    """A mounted UF2 boot drive named ``volume`` (e.g. ``RPI-RP2``) holding INFO_UF2.TXT."""
    for root in map(Path, roots):
        for candidate in (root / volume, *root.glob(f"*/{volume}")):
            if is_uf2_drive(candidate):
                return candidate
    return None


def is_uf2_drive(path: Path) -> bool:
    """Whether ``path`` is a mounted UF2 bootloader drive (it has INFO_UF2.TXT)."""
    try:
        return path.is_dir() and any(p.name.upper() == UF2_INFO_FILE for p in path.iterdir())
    except OSError:
        return False
