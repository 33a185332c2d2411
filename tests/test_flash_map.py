"""One flash map per board: linker script, budget, model slot and ESP32 partitions derive from it.

Checked for every MCU profile in both layouts, through the one rule (McuSpec.model_region):
the parts tile the flash region (each byte counted once); with --model-slot the linker script's
FLASH is exactly the model part, the slot lies outside firmware and model, and the budget
measures the embedded model against the model part and the slot image against the slot part;
without it there is no slot and FLASH is the model part plus the adjacent slot part.
"""

from __future__ import annotations

import itertools
import json
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
from firmware_export.plan.budget import check_budget, float_weight_savings
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


LAYOUTS = [pytest.param(True, id="model-slot"), pytest.param(False, id="no-slot")]


def linker_flash(text: str) -> tuple[int, int]:
    match = re.search(r"FLASH \(rx\)  : ORIGIN = (0x[0-9a-f]+), LENGTH = (0x[0-9a-f]+)", text)
    assert match is not None
    return int(match.group(1), 16), int(match.group(2), 16)


@pytest.mark.parametrize("slot", LAYOUTS)
@pytest.mark.parametrize("name", MCU_BOARDS)
def test_linker_flash_is_the_model_region_and_never_reaches_a_slot(name: str,
                                                                   slot: bool) -> None:
    spec = spec_of(name).mcu
    assert spec is not None and spec.model_slot is not None, f"{name} has no slot"
    start, length = linker_flash(linker_script(spec, name, slot))
    region, model, slot_part = spec.model_region(slot), spec.model_part, spec.model_slot
    assert (start, length) == (region.address, region.size)
    firmware = spec.flash_part("firmware")
    assert firmware is not None and firmware.end <= start  # the model links after the code
    if slot:
        assert (start, length) == (model.address, model.size)
        assert spec.slot_region(True) == slot_part
        slot_range = range(slot_part.address, slot_part.address + slot_part.length)
        for part in (model, firmware):
            assert part.end <= slot_range.start or part.address >= slot_range.stop, part
    else:  # model + slot, adjacent: their bytes once each, and no slot left to write
        slot_end = slot_part.address + slot_part.length
        assert start == min(model.address, slot_part.address)
        assert start + length == max(model.end, slot_end) and length == model.size + \
            slot_part.length  # span == sum: adjacent, no gap, no byte twice
        assert spec.slot_region(False) is None
        assert spec.flash_for_model == length


@pytest.mark.parametrize("slot", LAYOUTS)
@pytest.mark.parametrize("name", MCU_BOARDS)
def test_budget_counts_each_flash_byte_once(name: str, slot: bool) -> None:
    board = spec_of(name)
    spec = board.mcu
    assert spec is not None and spec.model_slot is not None
    arena = plan_arena(read_model(shared_file("models/person_detect.tflite")),
                       spec.pointer_size, spec.kernels)
    region = spec.model_region(slot).size
    if slot:
        slot_length = spec.model_slot.length
        budget = check_budget(board, arena, region, b"\0" * slot_length)
        assert (budget.flash_left, budget.slot_left, budget.model_slot) == (0, 0, True)
        assert region + slot_length == spec.model_region(False).size
        with pytest.raises(BudgetError, match=r"model data is .* with --model-slot .* 1 B too"):
            check_budget(board, arena, region + 1, b"\0" * 1000)
        with pytest.raises(BudgetError, match=r"model image is .* 1 B too many"):
            check_budget(board, arena, 1000, b"\0" * (slot_length + 1))
    else:
        budget = check_budget(board, arena, region)
        assert (budget.flash_left, budget.slot_length, budget.model_slot) == (0, None, False)
        assert budget.flash_for_model == spec.model_part.size + spec.model_slot.length
        with pytest.raises(BudgetError, match=r"model data is .* 1 B too many"):
            check_budget(board, arena, region + 1)


def partition_table(out: Path) -> dict[str, tuple[int, int]]:
    rows = [line.split(",") for line in (out / "partitions.csv").read_text().splitlines()
            if line and not line.startswith("#")]
    return {row[0].strip(): (int(row[3], 16), int(row[4], 16)) for row in rows}


@pytest.mark.parametrize("slot", LAYOUTS)
def test_esp32s3_partition_table_follows_the_flash_map(tmp_path: Path, slot: bool) -> None:
    result = export_model(shared_file("models/person_detect.tflite"), "esp32s3",
                          tmp_path / "fw", model_slot=slot)
    table = partition_table(result.out)
    spec = spec_of("esp32s3").mcu
    assert spec is not None and spec.model_slot is not None
    firmware = spec.flash_part("firmware")
    assert firmware is not None
    region = spec.model_region(slot)
    assert table["app0"] == (firmware.address, region.end - firmware.address)
    if slot:
        assert table["edge_model"] == (spec.model_slot.address, spec.model_slot.length)
    else:
        assert "edge_model" not in table
    spans = sorted(table.values())
    assert all(a + n <= b for (a, n), (b, _) in itertools.pairwise(spans))
    assert board_values(spec_of("esp32s3"), slot).esp_partitions


def test_model_slot_export_writes_the_image_beside_the_firmware(tmp_path: Path) -> None:
    result = export_model(DEMO_MODEL, "stm32h743", tmp_path / "fw", model_slot=True)
    assert result.slot_image == tmp_path / "fw" / "model_slot.img"
    ini = (tmp_path / "fw" / "platformio.ini").read_text()
    assert "\n    -DEDGE_USE_MODEL_SLOT=1\n" in ini
    assert "-DEDGE_MODEL_SLOT_ADDRESS=0x8100000u" in ini
    assert result.budget.slot_image_bytes == result.slot_image.stat().st_size


def test_demo_model_fits_nano33ble_without_a_slot(tmp_path: Path) -> None:
    """660,752 B of model in nano33ble's model + slot parts (720,896 B); the manifest, linker
    script and platformio.ini say the same layout."""
    result = export_model(DEMO_MODEL, "nano33ble", tmp_path / "fw")
    assert (result.budget.flash_for_model, result.budget.flash_left) == (720_896, 60_144)
    manifest = json.loads((result.out / "edge-export.json").read_text())
    assert (manifest["model_slot"], manifest["slot"]) == (False, None)
    assert manifest["model_region"] == {"address": 0x50000, "length": 720_896}
    assert linker_flash((result.out / "link" / "board.ld").read_text()) == (0x50000, 720_896)
    ini = (result.out / "platformio.ini").read_text()
    assert "EDGE_MODEL_SLOT" not in ini.replace("--model-slot", "")


def test_demo_model_with_model_slot_on_nano33ble_says_by_how_much(tmp_path: Path) -> None:
    """With --model-slot the embedded fallback gets the 360,448 B model part only. The model is
    int8 already: the message names what would help, never "quantize it"."""
    with pytest.raises(BudgetError, match=r"660,752 B but nano33ble has 360,448 B .*"
                                          r"--model-slot .*720,896 B.* 300,304 B too many") as e:
        export_model(DEMO_MODEL, "nano33ble", tmp_path / "fw", model_slot=True)
    assert not (tmp_path / "fw").exists()
    message = str(e.value)
    assert "quantize" not in message and "a smaller model" in message
    boards = message.split("a board with room for it: ")[1].split(", ")
    assert "stm32h743" in boards and "nano33ble" not in boards
    # Each board named holds the model in the same layout and its arena in RAM.
    for name in boards:
        spec = spec_of(name).mcu
        assert spec is not None and spec.model_slot is not None
        assert spec.model_region(True).size >= 660_752 and spec.ram_for_arena >= 210_616


def test_quantizing_is_advised_only_when_it_would_make_the_model_fit() -> None:
    board = spec_of("nano33ble")
    assert board.mcu is not None
    arena = plan_arena(read_model(shared_file("models/person_detect.tflite")),
                       board.mcu.pointer_size, board.mcu.kernels)
    too_big = board.mcu.model_region(False).size + 1000
    with pytest.raises(BudgetError, match=r"1,000 B too many; quantize it to int8 .*3,000 B"):
        check_budget(board, arena, too_big, quantize_saves=3000)
    with pytest.raises(BudgetError) as e:
        check_budget(board, arena, too_big, quantize_saves=999)
    assert "quantize" not in str(e.value) and "a smaller model" in str(e.value)
    big_image = b"\0" * (board.mcu.model_slot.length + 10) if board.mcu.model_slot else b""
    with pytest.raises(BudgetError, match=r"model image .* 10 B too many; .*quantize it"):
        check_budget(board, arena, 1000, big_image, quantize_saves=10)


def test_float_weight_savings_by_type() -> None:
    assert float_weight_savings([("float32", 400), ("float16", 100), ("int8", 1000),
                                 ("int32", 64)]) == 350
    assert float_weight_savings([("int8", 1000)]) == 0


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
    (parts(("firmware", 0x40000), ("model", 0x40000), ("free", 0x40000), ("slot", 0x40000)),
     "myboard.toml: [mcu]: flash_map[3] (the 'slot' part) must be right before or after the "
     "'model' part (flash_map[1])"),
])
def test_bad_flash_maps_are_refused_naming_the_field(flash_map: str, message: str,
                                                     tmp_path: Path) -> None:
    import tomllib

    source = tmp_path / "myboard.toml"
    with pytest.raises(BoardError, match=re.escape(message)):
        parse_board(tomllib.loads(BASE.format(name="myboard") + flash_map), source)


def test_docs_flash_map_table_matches_the_profiles() -> None:
    """docs/flashing.md shows each board's map in both layouts, as the profiles say."""
    text = (ROOT / "docs" / "flashing.md").read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w-]+)` \| \d+ MB at (.*)$",
                                                        text, re.M)}
    assert sorted(rows) == MCU_BOARDS
    for name in MCU_BOARDS:
        spec = spec_of(name).mcu
        assert spec is not None
        cells = [c.strip() for c in rows[name].split("|")][1:7]
        shown = dict(zip(("reserved", "firmware", "model", "slot", "free", "no-slot"), cells,
                         strict=True))
        for part in spec.flash_map:
            assert shown[part.kind].startswith(f"`{part.address:#x}`, {part.size // 1024:,} KB"), \
                (name, part)
        region = spec.model_region(slot=False)
        assert shown["no-slot"] == f"`{region.address:#x}`, {region.size // 1024:,} KB", name


# --- --fallback none: the slot takes the model part too (issue 24 point 4) ---------------------


def test_demo_model_with_model_slot_names_fallback_none(tmp_path: Path) -> None:
    with pytest.raises(BudgetError, match=r"300,304 B too many; --fallback none \(no embedded "
                                          r"model; the slot then gets 720,896 B"):
        export_model(DEMO_MODEL, "nano33ble", tmp_path / "fw", model_slot=True)


def test_demo_model_updates_in_place_on_nano33ble_without_a_fallback(tmp_path: Path) -> None:
    """--model-slot --fallback none: no embedded model, the slot spans the model and slot
    parts (720,896 B at 0x50000); manifest, build flags, model_data.cc and budget agree."""
    result = export_model(DEMO_MODEL, "nano33ble", tmp_path / "fw", model_slot=True,
                          fallback=False)
    assert result.slot_image is not None
    image_bytes = result.slot_image.stat().st_size
    assert (result.budget.slot_length, result.budget.slot_image_bytes) == (720_896, image_bytes)
    assert (result.budget.model_bytes, result.budget.flash_for_model) == (0, 0)
    manifest = json.loads((result.out / "edge-export.json").read_text())
    assert manifest["fallback"] == "none"
    assert manifest["slot"] == {"address": 0x50000, "length": 720_896}
    ini = (result.out / "platformio.ini").read_text()
    assert "-DEDGE_MODEL_NO_FALLBACK=1" in ini and "-DEDGE_MODEL_SLOT_ADDRESS=0x50000u" in ini
    assert "-DEDGE_MODEL_SLOT_LENGTH=0xb0000u" in ini
    model_cc = (result.out / "src" / "model_data.cc").read_text()
    assert "#if !defined(EDGE_MODEL_NO_FALLBACK)" in model_cc
    assert linker_flash((result.out / "link" / "board.ld").read_text())[1] == 0
    # The default layout keeps the embedded fallback and says so.
    embedded = export_model(shared_file("models/person_detect.tflite"), "nano33ble",
                            tmp_path / "fw2", model_slot=True)
    doc = json.loads((embedded.out / "edge-export.json").read_text())
    assert doc["fallback"] == "embedded" and doc["slot"]["length"] == 360_448
    assert "-DEDGE_MODEL_FALLBACK=1" in (embedded.out / "platformio.ini").read_text()


def test_esp32s3_without_a_fallback_gives_the_app_partition_only_the_firmware(
        tmp_path: Path) -> None:
    result = export_model(shared_file("models/person_detect.tflite"), "esp32s3",
                          tmp_path / "fw", model_slot=True, fallback=False)
    table = partition_table(result.out)
    spec = spec_of("esp32s3").mcu
    assert spec is not None
    firmware, whole = spec.flash_part("firmware"), spec.model_region(False)
    assert firmware is not None
    assert table["app0"] == (firmware.address, firmware.size)
    assert table["edge_model"] == (whole.address, whole.size)


def test_no_fallback_layout_of_every_board_with_a_slot() -> None:
    for name in MCU_BOARDS:
        spec = spec_of(name).mcu
        assert spec is not None
        if spec.model_slot is None:
            assert spec.slot_region(True, fallback=False) is None
            continue
        whole = spec.slot_region(True, fallback=False)
        assert whole is not None
        region = spec.model_region(False)
        assert (whole.address, whole.length) == (region.address, region.size)
        assert spec.model_region(True, fallback=False).size == 0
