"""``op_resolver.h``: a ``MicroMutableOpResolver<N>`` with exactly the model's operators."""

from __future__ import annotations

from collections.abc import Sequence

from edge.errors import ExportError
from firmware_export.codegen.render import Code, render

# Builtin operators the TFLM kernels registry has (tflite-micro's Register_* functions).
MICRO_OPS = frozenset("""
ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND
BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM
DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL
EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER
GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG
LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM
MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX
REDUCE_MIN RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT
SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE
SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV
UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE
""".split())

# Where TFLM's method name is not the CamelCase of the builtin name (checked against the
# pinned tree's micro_mutable_op_resolver.h by tests/test_tflm_library.py).
METHOD_EXCEPTIONS = {
    "BATCH_MATMUL": "BatchMatMul",
    "CUMSUM": "CumSum",
    "PADV2": "PadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTM",
}


def add_method(opcode: str) -> str:
    """``CONV_2D`` -> ``AddConv2D``."""
    name = METHOD_EXCEPTIONS.get(opcode) or "".join(_camel(p) for p in opcode.split("_"))
    return f"Add{name}"


def _camel(part: str) -> str:
    return part.upper() if part[:1].isdigit() else part.capitalize()


def unsupported_ops(opcodes: Sequence[str]) -> list[str]:
    return [op for op in opcodes if op not in MICRO_OPS]


def op_resolver_h(opcodes: Sequence[str]) -> str:
    """The resolver header for these (distinct) builtin operators.

    Raises:
        ExportError: an operator TFLite Micro has no kernel for.
    """
    missing = unsupported_ops(opcodes)
    if missing:
        raise ExportError(f"TFLite Micro has no kernel for {', '.join(missing)}")
    ops = sorted(set(opcodes))  # every name is from MICRO_OPS: [A-Z0-9_] only
    adds = "\n".join(f"  if (resolver.{add_method(op)}() != kTfLiteOk) return kTfLiteError;"
                     for op in ops)
    return render("op_resolver.h.in", count=len(ops), op_list=Code(", ".join(ops)),
                  adds=Code(adds))
