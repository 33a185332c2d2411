"""The TFLite flatbuffer schema binding, plus name tables.

The binding (:mod:`edge.model.schema_generated`) is edge's own, generated with ``flatc`` from
TFLite's ``schema.fbs`` (source commit and command in its header), not borrowed from an
interpreter wheel: the reader must work with whichever interpreter is installed
(``tflite-runtime`` and ``tensorflow`` ship no Python binding, and ai-edge-litert's is private),
and it needs only the ``flatbuffers`` runtime. ``tests/test_schema_bindings.py`` checks every
table field and enum value it shares with ai-edge-litert's copy. Regenerate it with
``flatc --python --gen-object-api --gen-onefile schema.fbs`` when a newer schema adds operators.

Only :mod:`edge.model.reader` and :mod:`firmware_export.plan.embed` use the binding, the reader
only on bytes that :mod:`edge.model.bounds` has checked.
"""

from __future__ import annotations

import inspect
import re
from functools import cache
from typing import Any

from edge.model import schema_generated as _generated

Model = _generated.Model
BuiltinOperator = _generated.BuiltinOperator


def _enum_names(enum_class: type) -> dict[int, str]:
    return {value: name for name, value in vars(enum_class).items()
            if not name.startswith("_") and isinstance(value, int)}


BUILTIN_NAMES: dict[int, str] = _enum_names(_generated.BuiltinOperator)
OPTIONS_NAMES: dict[int, str] = {k: v for k, v in _enum_names(_generated.BuiltinOptions).items()
                                 if k != 0}
PADDING_NAMES: dict[int, str] = _enum_names(_generated.Padding)
ACTIVATION_NAMES: dict[int, str] = _enum_names(_generated.ActivationFunctionType)
_ENUM_FIELDS = {"padding": PADDING_NAMES, "fused_activation_function": ACTIVATION_NAMES}
_SKIP_SUFFIXES = ("AsNumpy", "Length", "IsNone")


def _snake(name: str) -> str:
    """``DilationWFactor`` -> ``dilation_w_factor``: the schema's own field names."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


@cache
def _scalar_accessors(type_name: str) -> tuple[tuple[str, str], ...]:
    """(method, key) pairs of an options class's scalar fields."""
    cls = getattr(_generated, type_name)
    found = []
    for method_name, method in vars(cls).items():
        if method_name.startswith("_") or method_name == "Init" or not callable(method):
            continue
        if method_name.endswith(_SKIP_SUFFIXES) or method_name.startswith("GetRootAs"):
            continue
        if isinstance(method, (classmethod, staticmethod)):
            continue
        if len(inspect.signature(method).parameters) != 1:
            continue
        found.append((method_name, _snake(method_name)))
    return tuple(found)


def read_scalar_options(type_name: str, buf: bytes, pos: int) -> dict[str, Any]:
    """Scalar fields of a builtin options table, enums as names (``padding='SAME'``)."""
    table = getattr(_generated, type_name)()
    table.Init(buf, pos)
    options: dict[str, Any] = {}
    for method_name, key in _scalar_accessors(type_name):
        value = getattr(table, method_name)()
        if isinstance(value, bool | int | float):
            names = _ENUM_FIELDS.get(key)
            options[key] = names.get(int(value), int(value)) if names else value
    return options
