"""The arena model's struct table (firmware_export/plan/abi.py) is what each compiler lays out.

A probe prints sizeof/alignof of TFLM's structs, compiled against the pinned tree's headers with
g++ (x86-64), g++ -m32 and arm-none-eabi-g++ (run under qemu-system-arm): arm-none-eabi's
-fshort-enums makes TfLiteTensor 32 B where x86-32 has 40 B.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from firmware_export.plan.abi import ABIS
from firmware_export.tflm.build import include_flags
from firmware_export.tflm.program import Program
from firmware_export.tflm.run import run_program
from firmware_export.tflm.targets import get_target
from firmware_export.tflm.tree import TflmTree
from tests.conftest import need_tool
from tests.tflm_support import tflm_tree

PROBE = Path(__file__).with_name("c") / "tflm_abi_sizes.cc"
BOOT = Path(__file__).resolve().parents[1] / "firmware_export" / "tflm" / "boot"
CASES = {"x86-64": "host-64", "x86-32": "host-32", "arm-eabi": "cortex-m4"}


def measure(tree: TflmTree, target_name: str, out: Path) -> dict[str, tuple[int, int]]:
    target = get_target(target_name)
    need_tool(target.cxx, "make sysdeps")
    command = [*target.cxx_command(), "-O0", *include_flags(tree, target), str(PROBE)]
    if target.is_arm:
        need_tool("qemu-system-arm", "make sysdeps")
        command += [str(BOOT / "startup.c"), "-T", str(BOOT / "mps2.ld")]
    command += ["-o", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    if target.is_arm:
        from firmware_export.tflm.build import Library

        result = run_program(Program(out, Library(tree, target, out.parent)), timeout=120)
        text = result.stdout.decode()
    else:
        text = subprocess.run([str(out)], check=True, capture_output=True, text=True,
                              timeout=60).stdout
    found = {}
    for line in text.splitlines():
        name, size, align = line.split()
        found[name] = (int(size), int(align))
    return found


@pytest.mark.parametrize("abi", list(CASES))
def test_struct_table_matches_the_compiler(abi: str, tmp_path: Path) -> None:
    measured = measure(tflm_tree(), CASES[abi], tmp_path / "sizes")
    table = ABIS[abi].layouts
    compared = [name for name in measured if name in table]
    assert len(compared) >= 25
    wrong = {n: (table[n], measured[n]) for n in compared if table[n] != measured[n]}
    assert not wrong, f"{abi}: table vs compiler {wrong}"


def test_short_enums_shrink_the_tensor_struct_on_arm() -> None:
    assert ABIS["arm-eabi"].size("TfLiteTensor") == 32
    assert ABIS["x86-32"].size("TfLiteTensor") == 40
    assert ABIS["x86-64"].size("TfLiteTensor") == 64
