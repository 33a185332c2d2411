"""Which real TFLM builds verify an export: the 64-bit host build (reference kernels) and the
board's own CPU (its kernel set when a tree for it is given), each with the ABI it is built with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge.boards import BoardProfile
from firmware_export.plan.abi import Abi, get_abi
from firmware_export.tflm.targets import TARGETS, Target, board_target
from firmware_export.tflm.tree import TflmTree

ESP_NN_NOTE = ("esp-nn has no source tree here: the ESP32-S3 prediction's esp-nn scratch "
               "buffers and op data are unverified (checked: the head plan, the reference "
               "kernels' tail on a 32-bit build)")


@dataclass(frozen=True)
class BuildSpec:
    """One build to verify on: target, tree (kernel set), the ABI of the prediction, and why."""

    target: Target
    tree: TflmTree
    abi: Abi
    board_build: bool  # the board's own CPU (or its stand-in), with the exported arena
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.target.name} ({self.tree.kernels})"


def abi_for(target: Target) -> Abi:
    if target.short_enums:
        return get_abi("arm-eabi")
    return get_abi("x86-64" if target.pointer_size == 8 else "x86-32")


def plan_builds(board: BoardProfile, trees: Sequence[TflmTree]) -> tuple[list[BuildSpec],
                                                                          list[str]]:
    """The builds for ``board`` from the given trees, and notes on what could not be built."""
    kernels = board.mcu.kernels if board.mcu else "reference"
    reference = next((t for t in trees if t.kernels == "reference"), None)
    specs, notes = [], []
    if reference is not None:
        host = TARGETS["host-64"]
        specs.append(BuildSpec(host, reference, abi_for(host), False))
    else:
        notes.append("no reference-kernel TFLM tree given: no 64-bit host build")
    target, why = board_target(board)
    own = next((t for t in trees if t.kernels == kernels), None)
    if kernels == "esp-nn":
        notes.append(ESP_NN_NOTE)
    if own is None or not (own.kernels == "reference" or target.is_arm):
        own = reference
        if own is not None and kernels != "reference":
            notes.append(f"no {kernels} tree given: the {board.name} build uses reference "
                         "kernels")
    if why:
        notes.append(why)
    if own is not None:
        specs.append(BuildSpec(target, own, abi_for(target), True, why))
    return specs, notes
