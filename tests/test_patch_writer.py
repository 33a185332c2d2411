"""edge/model/writer.py: unpack -> pack keeps every tensor, operator, option, quantization and
constant byte; constant buffers start 16-byte aligned; the pip TFLM gives identical outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.model import read_model, schema_generated
from edge.model.writer import BUFFER_ALIGNMENT, add_buffer, opcode_index, pack_model, unpack_model
from tests.conftest import ROOT, shared_file

DEMO_MODEL = ROOT / "edge" / "demo" / "demo_model.tflite"


def _models() -> list[Path]:
    paths = [shared_file("models/person_detect.tflite"),
             shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")]
    return [*paths, DEMO_MODEL] if DEMO_MODEL.is_file() else paths


@pytest.mark.parametrize("index", [0, 1, 2])
def test_round_trip_keeps_the_model(index: int) -> None:
    models = _models()
    if index >= len(models):
        pytest.skip("the demo model is missing")
    content = models[index].read_bytes()
    before = read_model(content)
    after = read_model(pack_model(unpack_model(content)))
    assert before.metadata.keys() == after.metadata.keys()
    assert len(before.main.tensors) == len(after.main.tensors)
    for a, b in zip(before.main.tensors, after.main.tensors, strict=True):
        assert (a.name, a.shape, a.dtype, a.is_variable) == (b.name, b.shape, b.dtype,
                                                             b.is_variable)
        assert (a.data is None) == (b.data is None)
        if a.data is not None and b.data is not None:
            assert bytes(a.data) == bytes(b.data)
        if a.quantization is not None and b.quantization is not None:
            assert np.array_equal(a.quantization.scale, b.quantization.scale)
            assert np.array_equal(a.quantization.zero_point, b.quantization.zero_point)
    for a, b in zip(before.main.operators, after.main.operators, strict=True):
        assert (a.opcode, a.version, a.inputs, a.outputs, a.options) == (
            b.opcode, b.version, b.inputs, b.outputs, b.options)
    assert (before.main.inputs, before.main.outputs) == (after.main.inputs, after.main.outputs)


def test_constant_buffers_are_aligned() -> None:
    obj = unpack_model(shared_file("models/person_detect.tflite").read_bytes())
    marker = bytes(range(1, 40))
    add_buffer(obj, marker)
    content = pack_model(obj)
    at = content.index(marker)
    assert at % BUFFER_ALIGNMENT == 0
    model = read_model(content)
    for tensor in model.main.tensors:
        if tensor.data is not None and len(tensor.data) >= 16:
            position = content.find(bytes(tensor.data))
            assert position % BUFFER_ALIGNMENT == 0, tensor.name


def test_opcode_index_adds_once() -> None:
    obj = unpack_model(shared_file("models/person_detect.tflite").read_bytes())
    count = len(obj.operatorCodes)
    slice_op = schema_generated.BuiltinOperator.SLICE
    first = opcode_index(obj, slice_op)
    assert opcode_index(obj, slice_op) == first == count
    assert len(obj.operatorCodes) == count + 1


def test_pip_outputs_identical_after_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("tflite_micro", reason="needs the tflite-micro package (the mcu extra)")
    from firmware_export.plan.fit import pip_arena
    from firmware_export.verify.children import pip_outputs
    from firmware_export.verify.ladder import sample_inputs

    source = shared_file("models/person_detect.tflite")
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(pack_model(unpack_model(source.read_bytes())))
    model = read_model(source)
    inputs = sample_inputs(model)
    arena = pip_arena(model).size
    for a, b in zip(pip_outputs(source, arena, inputs), pip_outputs(copy, arena, inputs),
                    strict=True):
        assert np.array_equal(a, b)
