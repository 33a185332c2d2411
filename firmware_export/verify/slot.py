"""The model-slot boot path under QEMU: the firmware built with ``EDGE_USE_MODEL_SLOT`` reads
the image that ``edge-flash`` wrote from emulated flash at the board's slot address.

QEMU's generic loader places the image's bytes at the slot address before reset (the MPS2 code
memory spans 0x0-0x3FFFFF, where e.g. nano33ble's slot at 0xB0000 lies), so the firmware's own
``edge_model_image_check()`` runs on them exactly as on the board.
"""

from __future__ import annotations

from pathlib import Path

from edge.boards import BoardProfile
from edge.errors import VerifyError
from edge.serial.protocol import STREAM_START, LabelRecord, StreamDecoder
from firmware_export.image import board_id
from firmware_export.tflm.build import Library
from firmware_export.tflm.program import Program
from firmware_export.tflm.run import Loaded, RunResult, run_program
from firmware_export.verify.programs import build_slot_firmware

EMULATED_CODE_MEMORY = 4 << 20  # MPS2 code SRAM at 0x0


def slot_defines(board: BoardProfile, fallback: bool = True) -> list[str]:
    """The macros ``platformio.ini`` gives the firmware for the board's slot, with or without
    an embedded fallback model (``--fallback``).

    Raises:
        VerifyError: the board has no slot, or it lies outside the emulated code memory.
    """
    slot = board.mcu.slot_region(True, fallback) if board.mcu else None
    if slot is None:
        raise VerifyError(f"{board.name} has no [mcu.model_slot]")
    if slot.address + slot.length > EMULATED_CODE_MEMORY:
        raise VerifyError(f"{board.name}'s slot at {slot.address:#x} is outside the MPS2 "
                          "board's code memory (0x0-0x3FFFFF) that QEMU emulates")
    return [f"-DEDGE_MODEL_SLOT_ADDRESS={slot.address:#x}u",
            f"-DEDGE_MODEL_SLOT_LENGTH={slot.length:#x}u",
            f"-DEDGE_BOARD_ID={board_id(board.name):#010x}u",
            "-DEDGE_MODEL_FALLBACK=1" if fallback else "-DEDGE_MODEL_NO_FALLBACK=1"]


def build_slot(project: Path, library: Library, board: BoardProfile,
               fallback: bool = True) -> Program:
    return build_slot_firmware(project, library, slot_defines(board, fallback))


def boot_from_slot(firmware: Program, board: BoardProfile, image: Path | None, frames: Path,
                   frame_bytes: int, fallback: bool = True
                   ) -> tuple[RunResult, list[LabelRecord]]:
    """Run the slot firmware with ``image`` in its slot (None: erased flash) on ``frames``."""
    slot = board.mcu.slot_region(True, fallback) if board.mcu else None
    assert slot is not None
    loads = [Loaded(image, slot.address)] if image is not None else []
    result = run_program(firmware, [str(frames), str(frame_bytes)], loads=loads)
    return result, firmware_records(result.stdout)


def firmware_records(stdout: bytes) -> list[LabelRecord]:
    """The firmware's stream as it promises it: text records (a refused image, a fallback)
    until the stream-start byte, binary frames after it."""
    text, start, frames = stdout.partition(STREAM_START)
    records = StreamDecoder("text").feed(text)
    return records + (StreamDecoder("binary").feed(start + frames) if start else [])
