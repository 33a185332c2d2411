"""edge's own TFLite schema binding: it agrees with the interpreter's copy, and reading or
re-writing a model never imports an interpreter package."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge.model import schema_generated as ours

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "edge" / "demo" / "demo_model.tflite"
_OFFSET = re.compile(r"Offset\((\d+)\)")


def _layout(cls: type) -> dict[str, object]:
    """Enum values and, for tables, the vtable slot each accessor reads."""
    found: dict[str, object] = {}
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, int):
            found[name] = value
        elif inspect.isfunction(value):
            slots = _OFFSET.findall(inspect.getsource(value))
            if slots:
                found[name] = tuple(slots)
    return found


def test_every_shared_field_and_enum_value_agrees_with_ai_edge_litert() -> None:
    theirs = pytest.importorskip("ai_edge_litert.schema_py_generated",
                                 reason="ai-edge-litert is a runtime dependency of edge")
    compared = 0
    for name, cls in vars(theirs).items():
        mine = getattr(ours, name, None)
        if not inspect.isclass(cls) or cls.__module__ != theirs.__name__ or mine is None:
            continue
        a, b = _layout(cls), _layout(mine)
        for key in a.keys() & b.keys():
            assert a[key] == b[key], f"{name}.{key}: ai-edge-litert {a[key]}, ours {b[key]}"
            compared += 1
    assert compared > 900  # tables, fields and enum values: the whole schema, not a corner


def test_core_tables_are_all_there() -> None:
    for name in ("Model", "ModelT", "SubGraph", "Tensor", "Operator", "OperatorCode", "Buffer",
                 "BufferT", "Metadata", "QuantizationParameters", "Conv2DOptions",
                 "DepthwiseConv2DOptions", "FullyConnectedOptions", "BuiltinOperator"):
        assert hasattr(ours, name), name
    assert ours.BuiltinOperator.BATCH_MATMUL == 126


_BLOCKED = """
import sys
for name in ("ai_edge_litert", "tflite_runtime", "tensorflow", "tflite_micro"):
    sys.modules[name] = None  # any import of it raises ImportError
from edge.model import read_model
from firmware_export.plan.embed import with_metadata
model = read_model(sys.argv[1])
again = read_model(with_metadata(model.content, "edge_test", b"1234"), "embedded")
assert again.metadata["edge_test"] == b"1234"
print(len(model.main.operators), sorted(again.metadata))
"""


def test_reader_and_embedder_work_without_any_interpreter_package() -> None:
    done = subprocess.run([sys.executable, "-c", _BLOCKED, str(DEMO)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "edge_test" in done.stdout
