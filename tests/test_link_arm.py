"""Model data + tensor arena linked with arm-none-eabi-gcc against the board's memory map.

The linker script gives FLASH = the flash map's model region (McuSpec.model_region: the model
part with --model-slot, model + slot parts without) and RAM = what the board leaves for the
arena, so a link that succeeds means the model fits beside the firmware (and never reaches a
model slot), and one that fails says which region overflowed. The budget and the linker script
come from the same function: what the budget refuses, the linker refuses too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.boards import get_board
from edge.errors import BudgetError
from edge.model import read_model
from firmware_export.codegen.arena_h import arena_cc, arena_h, arena_values
from firmware_export.codegen.linker import linker_script
from firmware_export.codegen.model_data import model_data_cc, model_data_h
from firmware_export.export import export_model
from firmware_export.plan.arena import plan_arena
from tests.conftest import ROOT, shared_file

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-g++") is None,
                                reason="needs Debian's gcc-arm-none-eabi")
DEMO_MODEL = ROOT / "edge" / "demo" / "demo_model.tflite"
CPU_FLAGS = {
    "nano33ble": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "stm32h743": ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"],
}


def link(src: Path, script: Path, out: Path, board: str = "nano33ble"
         ) -> subprocess.CompletedProcess[str]:
    objects = []
    cpu = CPU_FLAGS[board]
    for name in ("model_data.cc", "arena.cc"):
        obj = out / f"{name}.o"
        subprocess.run(["arm-none-eabi-g++", *cpu, "-std=gnu++17", "-O0", "-c",
                        f"-I{src}", str(src / name), "-o", str(obj)],
                       check=True, capture_output=True, timeout=600)
        objects.append(str(obj))
    return subprocess.run(["arm-none-eabi-g++", *cpu, "-nostdlib", "-nostartfiles",
                           "-Wl,--entry=0", "-T", str(script), *objects,
                           "-o", str(out / "model.elf")],
                          capture_output=True, text=True, timeout=600, check=False)


def check_links(model: Path, tmp_path: Path, board: str = "nano33ble", model_slot: bool = False
                ) -> None:
    result = export_model(model, board, tmp_path / "fw", model_slot=model_slot)
    done = link(result.out / "src", result.out / "link" / "board.ld", tmp_path, board)
    assert done.returncode == 0, done.stderr
    sizes = subprocess.run(["arm-none-eabi-size", "-A", str(tmp_path / "model.elf")],
                           capture_output=True, text=True, check=True).stdout
    assert f"{result.arena.size}" in sizes  # .bss holds exactly the arena


def test_demo_model_links_for_stm32h743_with_a_slot(tmp_path: Path) -> None:
    check_links(DEMO_MODEL, tmp_path, "stm32h743", model_slot=True)


def test_demo_model_links_for_nano33ble_without_a_slot(tmp_path: Path) -> None:
    """660,752 B in the 720,896 B of model + slot parts that firmware without a slot links into."""
    check_links(DEMO_MODEL, tmp_path, "nano33ble")


def generate_directly(path: Path, board_name: str, src: Path, model_slot: bool = False) -> Path:
    """model_data/arena sources and the board's linker script, bypassing the budget check."""
    board = get_board(board_name, kind="mcu")
    assert board.mcu is not None
    model = read_model(path)
    arena = arena_values(plan_arena(model, board.mcu.pointer_size, board.mcu.kernels))
    src.mkdir()
    (src / "model_data.h").write_text(model_data_h("g_big_model", len(model.content), False))
    (src / "model_data.cc").write_text(model_data_cc("g_big_model", model.content, False))
    (src / "arena.h").write_text(arena_h(arena, path.name, board_name))
    (src / "arena.cc").write_text(arena_cc())
    script = src / "board.ld"
    script.write_text(linker_script(board.mcu, board_name, model_slot))
    return script


def test_demo_model_with_model_slot_is_refused_for_nano33ble_by_budget_and_linker_alike(
        tmp_path: Path) -> None:
    """With --model-slot, 660,752 B of fallback model in the 360,448 B model part: both say no."""
    with pytest.raises(BudgetError, match=r"360,448 B .* with --model-slot .* 300,304 B too many"):
        export_model(DEMO_MODEL, "nano33ble", tmp_path / "fw", model_slot=True)
    script = generate_directly(DEMO_MODEL, "nano33ble", tmp_path / "src", model_slot=True)
    done = link(tmp_path / "src", script, tmp_path)
    assert done.returncode != 0
    overflow = re.search(r"region `FLASH' overflowed by (\d+) bytes", done.stderr)
    assert overflow is not None, done.stderr
    # The linker also places the model's 16-byte alignment and the other tiny .rodata.
    assert 300_304 <= int(overflow.group(1)) <= 300_304 + 64


def test_person_detect_links_for_nano33ble(tmp_path: Path) -> None:
    check_links(shared_file("models/person_detect.tflite"), tmp_path)


def test_mobilenet_v2_does_not_link_for_lack_of_ram(tmp_path: Path) -> None:
    path = shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")
    # Generated directly: export_model itself refuses this model for nano33ble (BudgetError).
    script = generate_directly(path, "nano33ble", tmp_path / "src")
    done = link(tmp_path / "src", script, tmp_path)
    assert done.returncode != 0
    assert "region `RAM' overflowed" in done.stderr
