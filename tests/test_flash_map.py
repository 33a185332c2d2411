"""One flash map per board: linker script, budget, model slot and ESP32 partitions derive from it.

Checked for every MCU profile: the parts tile the flash region (each byte counted once), the
linker script's FLASH is exactly the model part, the slot lies outside firmware and model, and
the budget measures the embedded model against the model part and the slot image against the
slot part, never one against the other.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from edge.boards import BoardProfile, get_board, load_boards, parse_board
from edge.errors import BoardError, BudgetError
from edge.model import read_model
from firmware_export.codegen.linker import linker_script
from firmware_export.codegen.project import board_values
from firmware_export.export import export_model
from firmware_export.plan.arena import plan_arena
from firmware_export.plan.budget import check_budget
from tests.conftest import ROOT, shared_file

MCU_BOARDS = sorted(name for name, board in load_boards().items() if board.kind == "mcu")
DEMO_MODEL = ROOT / "edge" / "demo" / "demo_model.tflite"


def spec_of(name: str) -> BoardProfile:
    board = get_board(name, kind="mcu")
    assert board.mcu is not None
    return board


def test_every_mcu_profile_is_checked() -> None:
    assert {"nano33ble", "pico", "esp32s3", "teensy41", "stm32f746-disco",
            "stm32h743"} <= set(MCU_BOARDS)


@pytest.mark.parametrize("name", MCU_BOARDS)
def test_parts_tile_the_flash_region(name: str) -> None:
    spec = spec_of(name).mcu
    assert spec is not None
    flash = spec.region(spec.flash_region)
    address = flash.origin
    for part in spec.flash_map:
        assert part.address == address and part.size > 0 and part.address % 0x1000 == 0
        address = part.end
    assert address == flash.origin + flash.length  # every byte in exactly one part
    kinds = [part.kind for part in spec.flash_map]
    assert kinds.count("firmware") == 1 and kinds.count("model") == 1
    assert kinds.count("slot") <= 1


@pytest.mark.parametrize("name", MCU_BOARDS)
def test_linker_flash_is_the_model_part_and_the_slot_is_outside_it(name: str) -> None:
    board = spec_of(name)
    spec = board.mcu
    assert spec is not None
    text = linker_script(spec, name)
    match = re.search(r"FLASH \(rx\)  : ORIGIN = (0x[0-9a-f]+), LENGTH = (0x[0-9a-f]+)", text)
    assert match is not None
    start, length = int(match.group(1), 16), int(match.group(2), 16)
    model = spec.model_part
    assert (start, length) == (model.address, model.size)
    firmware = spec.flash_part("firmware")
    assert firmware is not None and firmware.end <= start  # the model links after the code
    slot = spec.model_slot
    assert slot is not None, f"{name} has no slot"
    slot_range = range(slot.address, slot.address + slot.length)
    for part in (model, firmware):
        assert part.end <= slot_range.start or part.address >= slot_range.stop, part


@pytest.mark.parametrize("name", MCU_BOARDS)
def test_budget_counts_model_and_slot_against_their_own_parts(name: str) -> None:
    board = spec_of(name)
    spec = board.mcu
    assert spec is not None and spec.model_slot is not None
    arena = plan_arena(read_model(shared_file("models/person_detect.tflite")),
                       spec.pointer_size, spec.kernels)
    model_part, slot = spec.model_part.size, spec.model_slot.length
    budget = check_budget(board, arena, model_part, b"\0" * slot)
    assert (budget.flash_left, budget.slot_left) == (0, 0)
    with pytest.raises(BudgetError, match=r"model data is .* 1 B too many"):
        check_budget(board, arena, model_part + 1)
    with pytest.raises(BudgetError, match=r"model image is .* 1 B too many"):
        check_budget(board, arena, 1000, b"\0" * (slot + 1))


def test_esp32s3_partition_table_follows_the_flash_map(tmp_path: Path) -> None:
    result = export_model(shared_file("models/person_detect.tflite"), "esp32s3",
                          tmp_path / "fw")
    rows = [line.split(",") for line in (result.out / "partitions.csv").read_text().splitlines()
            if line and not line.startswith("#")]
    table = {row[0].strip(): (int(row[3], 16), int(row[4], 16)) for row in rows}
    spec = spec_of("esp32s3").mcu
    assert spec is not None and spec.model_slot is not None
    firmware = spec.flash_part("firmware")
    assert firmware is not None
    assert table["app0"] == (firmware.address, spec.model_part.end - firmware.address)
    assert table["edge_model"] == (spec.model_slot.address, spec.model_slot.length)
    spans = sorted(table.values())
    assert all(a + n <= b for (a, n), (b, _) in itertools.pairwise(spans))
    assert board_values(spec_of("esp32s3")).esp_partitions


def test_model_slot_export_writes_the_image_beside_the_firmware(tmp_path: Path) -> None:
    result = export_model(DEMO_MODEL, "stm32h743", tmp_path / "fw", model_slot=True)
    assert result.slot_image == tmp_path / "fw" / "model_slot.img"
    ini = (tmp_path / "fw" / "platformio.ini").read_text()
    assert "\n    -DEDGE_USE_MODEL_SLOT=1\n" in ini
    assert "-DEDGE_MODEL_SLOT_ADDRESS=0x8100000u" in ini
    assert result.budget.slot_image_bytes == result.slot_image.stat().st_size


def test_demo_model_does_not_fit_nano33ble_and_says_by_how_much(tmp_path: Path) -> None:
    """The README once claimed it did: 660,752 B of model against a 360,448 B model part."""
    with pytest.raises(BudgetError, match=r"660,752 B but nano33ble has 360,448 B .* "
                                          r"300,304 B too many"):
        export_model(DEMO_MODEL, "nano33ble", tmp_path / "fw")
    assert not (tmp_path / "fw").exists()


BASE = """name = "{name}"
kind = "mcu"
[mcu]
pointer_size = 4
arena_region = "ram"
flash_region = "flash"
[[mcu.memory]]
name = "flash"
kind = "flash"
origin = 0x0
length = 0x100000
[[mcu.memory]]
name = "ram"
kind = "ram"
origin = 0x20000000
length = 0x40000
"""


def parts(*spec: tuple[str, int]) -> str:
    return "".join(f'[[mcu.flash_map]]\npart = "{kind}"\nsize = {size:#x}\n'
                   for kind, size in spec)


@pytest.mark.parametrize("flash_map, message", [
    (parts(("firmware", 0x40000), ("model", 0x40000)), "add up to 0x80000 B but flash is "
                                                         "0x100000 B"),
    (parts(("firmware", 0x40000), ("model", 0x40000), ("slot", 0x40000), ("slot", 0x40000)),
     "at most one 'slot' part, has 2"),
    (parts(("model", 0x80000), ("slot", 0x80000)), "exactly one 'firmware' part, has 0"),
    (parts(("firmware", 0x40800), ("model", 0xBF800)), "must be a multiple of 0x1000"),
    (parts(("firmware", 0x40000), ("code", 0xC0000)), "part (='code') must be one of"),
])
def test_bad_flash_maps_are_refused_naming_the_field(flash_map: str, message: str,
                                                     tmp_path: Path) -> None:
    import tomllib

    source = tmp_path / "myboard.toml"
    with pytest.raises(BoardError, match=re.escape(message)):
        parse_board(tomllib.loads(BASE.format(name="myboard") + flash_map), source)


def test_docs_flash_map_table_matches_the_profiles() -> None:
    """docs/flashing.md shows each board's map; it must say what the profiles say."""
    text = (ROOT / "docs" / "flashing.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w-]+)` \| \d+ MB at (.*)$",
                                                        text, re.M)}
    assert sorted(rows) == MCU_BOARDS
    for name in MCU_BOARDS:
        spec = spec_of(name).mcu
        assert spec is not None
        cells = [c.strip() for c in rows[name].split("|")][1:6]
        shown = {kind: cell for kind, cell in zip(("reserved", "firmware", "model", "slot",
                                                   "free"), cells, strict=True)}
        for part in spec.flash_map:
            assert shown[part.kind].startswith(f"`{part.address:#x}`, {part.size // 1024:,} KB"), \
                (name, part)
