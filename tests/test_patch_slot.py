"""Issue 21, point 5: a rewritten (tiled) model travels through the model slot unchanged.

person_detect exported with ``--patch 2x3 --model-slot --fallback none`` for nano33ble: the
slot image export writes and the one edge-flash writes from the exported model round-trip to
the tiled model and the firmware's arena; the Cortex-M4 slot firmware (the unchanged
main.cpp, built from the project) boots the image under QEMU and labels TFLM's person /
no-person images as the untiled model does on the pip interpreter.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edge.boards import get_board
from edge.model import read_model
from firmware_export.cli.flash import main as flash_main
from firmware_export.export import export_model
from firmware_export.image import parse_image
from firmware_export.plan.fit import pip_arena
from firmware_export.verify.children import pip_outputs
from firmware_export.verify.slot import boot_from_slot, build_slot
from tests.conftest import shared_file
from tests.test_slot_boot_qemu import SIDE, frame
from tests.tflm_support import tflm_library


def test_tiled_model_boots_from_the_slot(tmp_path: Path) -> None:
    person = shared_file("models/person_detect.tflite")
    board = get_board("nano33ble", kind="mcu")
    exported = export_model(person, board, tmp_path / "fw", model_slot=True, fallback=False,
                            patch=(2, 3))
    assert exported.patch is not None and exported.slot_image is not None
    tiled = exported.model_path.read_bytes()
    assert {"SLICE", "CONCATENATION"} <= set(read_model(tiled, name="tiled").opcodes)
    arena_h = next(exported.out.rglob("arena.h")).read_text(encoding="utf-8")
    declared = int(re.search(r"kTensorArenaSize = (\d+)", arena_h).group(1))  # type: ignore
    assert declared == exported.arena.size < get_board("nano33ble").mcu.ram_for_arena  # type: ignore

    written = parse_image(exported.slot_image.read_bytes(), "nano33ble")
    assert written.model == tiled and written.header.arena_size == declared

    image = tmp_path / "slot.bin"
    assert flash_main([str(exported.model_path), "--board", "nano33ble", "--firmware",
                       str(exported.out), "-o", str(image), "-q"]) == 0
    flashed = parse_image(image.read_bytes(), "nano33ble")
    assert flashed.model == tiled and flashed.header.arena_size == declared

    frames = tmp_path / "frames.bin"
    pictures = [frame("person.bmp"), frame("no_person.bmp")]
    frames.write_bytes(b"".join(pictures))
    library = tflm_library("cortex-m4", "cmsis-nn", read_model(tiled, name="tiled").opcodes)
    firmware = build_slot(exported.out, library, board, fallback=False)
    result, records = boot_from_slot(firmware, board, image, frames, SIDE * SIDE,
                                     fallback=False)
    assert not result.crashed and result.returncode == 0, result.describe()
    assert [r.text for r in records if r.text] == []

    untiled = read_model(person)
    inputs = [np.frombuffer(p, np.int8).reshape(1, SIDE, SIDE, 1) for p in pictures]
    expected = pip_outputs(person, pip_arena(untiled).size, inputs)
    out = untiled.output_tensors[0].quantization
    assert out is not None
    labels = [int(np.argmax(e)) for e in expected]
    assert [r.label for r in records] == labels == [1, 0]
    for record, scores in zip(records, expected, strict=True):
        want = (int(scores[record.label]) - out.zero_point[0]) * out.scale[0]
        assert abs(record.score - want) <= out.scale[0] / 2
