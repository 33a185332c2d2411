"""Issue 11, point 8: the slot boot path runs for real, under QEMU.

The Cortex-M4 build of the exported main.cpp with EDGE_USE_MODEL_SLOT reads the image that
`edge-flash -o` wrote, placed in emulated flash at nano33ble's slot address, runs it on the
person / no-person images and streams their labels; for an image with one flipped bit, one made
for another board and one whose arena exceeds kTensorArenaSize, its own slot check refuses
with one text record and never invokes the image's model: firmware with the embedded fallback
(``--fallback embedded``, the default) then runs that, firmware without one (``--fallback
none``, whose slot spans the model part too, at 0x50000) runs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge.boards import BoardProfile, get_board
from edge.serial.protocol import LabelRecord
from firmware_export.cli.flash import main as flash_main
from firmware_export.export import export_model
from firmware_export.tflm.program import Program
from firmware_export.verify.slot import boot_from_slot, build_slot
from tests.conftest import shared_file
from tests.tflm_support import tflm_library

SIDE = 96


def frame(name: str) -> bytes:
    """TFLM's person/no-person BMP as the model's int8 input: raw bytes, rows top-down."""
    raw = shared_file(f"images/{name}").read_bytes()[-SIDE * SIDE:]
    return np.frombuffer(raw, np.uint8).reshape(SIDE, SIDE)[::-1].tobytes()


@dataclass(frozen=True)
class SlotSetup:
    folder: Path
    person: Path
    arena: int
    board: BoardProfile
    firmware: Program
    frames: Path


@pytest.fixture(scope="module")
def slot_setup(tmp_path_factory: pytest.TempPathFactory) -> SlotSetup:
    library = tflm_library("cortex-m4", "cmsis-nn")
    folder = tmp_path_factory.mktemp("slot")
    person = shared_file("models/person_detect.tflite")
    exported = export_model(person, "nano33ble", folder / "fw")
    board = get_board("nano33ble", kind="mcu")
    firmware = build_slot(exported.out, library, board)
    frames = folder / "frames.bin"
    frames.write_bytes(frame("person.bmp") + frame("no_person.bmp"))
    return SlotSetup(folder, person, exported.arena.size, board, firmware, frames)


def flash_image(setup: SlotSetup, name: str, board: str, arena: int) -> Path:
    out = setup.folder / name
    code = flash_main([str(setup.person), "--board", board, "--arena-size", str(arena),
                       "-o", str(out), "-q"])
    assert code == 0 and out.is_file()
    return out


def boot(setup: SlotSetup, image: Path | None) -> list[LabelRecord]:
    result, records = boot_from_slot(setup.firmware, setup.board, image, setup.frames,
                                     SIDE * SIDE)
    assert not result.crashed and result.returncode == 0, result.describe()
    return records


def refused(records: list[LabelRecord], reason: str) -> bool:
    """One text record with the reason; then either nothing (refused) or the built-in model's
    labels (kept it)."""
    texts = [r.text for r in records if r.text]
    labels = [r.label for r in records if not r.text]
    return len(texts) == 1 and reason in texts[0].lower() and labels in ([], [1, 0])


def test_runs_the_image_edge_flash_wrote(slot_setup: SlotSetup) -> None:
    image = flash_image(slot_setup, "good.bin", "nano33ble", slot_setup.arena)
    records = boot(slot_setup, image)
    assert [r.text for r in records if r.text] == []
    assert [r.label for r in records] == [1, 0]  # person, no person


def test_flipped_bit_is_refused(slot_setup: SlotSetup) -> None:
    image = flash_image(slot_setup, "flip.bin", "nano33ble", slot_setup.arena)
    data = bytearray(image.read_bytes())
    data[64 + 1000] ^= 0x10  # one bit of the model
    image.write_bytes(bytes(data))
    assert refused(boot(slot_setup, image), "crc")


def test_image_for_another_board_is_refused(slot_setup: SlotSetup) -> None:
    image = flash_image(slot_setup, "other.bin", "pico", slot_setup.arena)
    assert refused(boot(slot_setup, image), "another board")


def test_arena_larger_than_the_firmware_is_refused(slot_setup: SlotSetup) -> None:
    image = flash_image(slot_setup, "big.bin", "nano33ble", slot_setup.arena + 16)
    assert refused(boot(slot_setup, image), "arena")


def test_erased_slot_is_refused(slot_setup: SlotSetup) -> None:
    assert refused(boot(slot_setup, None), "no model image")


# --- --fallback embedded / none ---------------------------------------------------------------


@pytest.fixture(scope="module")
def no_fallback(slot_setup: SlotSetup) -> tuple[Path, Program]:
    """person_detect exported --model-slot --fallback none, and its slot firmware."""
    library = tflm_library("cortex-m4", "cmsis-nn")
    exported = export_model(slot_setup.person, "nano33ble", slot_setup.folder / "fw-none",
                            model_slot=True, fallback=False)
    return exported.out, build_slot(exported.out, library, slot_setup.board, fallback=False)


def test_with_the_fallback_an_erased_slot_runs_the_embedded_model(slot_setup: SlotSetup) -> None:
    records = boot(slot_setup, None)
    assert ["no model image" in r.text.lower() for r in records if r.text] == [True]
    assert [r.label for r in records if not r.text] == [1, 0]


def test_without_a_fallback_the_image_boots_from_the_whole_slot(
        slot_setup: SlotSetup, no_fallback: tuple[Path, Program]) -> None:
    project, firmware = no_fallback
    image = slot_setup.folder / "none.bin"
    # edge-flash reads the layout from the project's edge-export.json.
    assert flash_main([str(slot_setup.person), "--board", "nano33ble", "--firmware",
                       str(project), "-o", str(image), "-q"]) == 0
    result, records = boot_from_slot(firmware, slot_setup.board, image, slot_setup.frames,
                                     SIDE * SIDE, fallback=False)
    assert not result.crashed and result.returncode == 0, result.describe()
    assert [r.text for r in records if r.text] == []
    assert [r.label for r in records] == [1, 0]
    # At the embedded layout's slot address (0xa8000) the firmware finds nothing.
    result, records = boot_from_slot(firmware, slot_setup.board, image, slot_setup.frames,
                                     SIDE * SIDE, fallback=True)
    assert [r.label for r in records if not r.text] == []


def test_without_a_fallback_an_erased_slot_runs_nothing(
        slot_setup: SlotSetup, no_fallback: tuple[Path, Program]) -> None:
    _, firmware = no_fallback
    result, records = boot_from_slot(firmware, slot_setup.board, None, slot_setup.frames,
                                     SIDE * SIDE, fallback=False)
    assert not result.crashed and result.returncode == 0, result.describe()
    assert [r.text.lower() for r in records] == [r.text.lower() for r in records if r.text]
    assert len(records) == 1 and "no model image" in records[0].text.lower()
