"""What each TFLite Micro kernel allocates, per operator: one table, keyed by opcode.

For every operator TFLM allocates, in this order (``micro_interpreter.cc``): the parsed builtin
options (``Parse*`` in ``flatbuffer_conversions.cc``, TFLite's ``TfLite*Params`` structs), the
kernel's op data in ``Init`` and further persistent buffers in ``Prepare`` (per-channel output
multipliers and shifts: one int32 each per output channel of int8 convolutions), plus scratch
buffers requested in ``Prepare`` that the planner places in the arena head.

Struct sizes come per ABI from :mod:`firmware_export.plan.abi` (measured with each compiler on
TFLM's headers); the allocation order and per-kernel rules come from reading TFLM's kernels
(reference and CMSIS-NN trees in ``../shared/tflm``) and are checked against the real builds by
``edge-export --verify``. Operators not in the table get :data:`UNKNOWN_OP`, a deliberately
generous guess, and are flagged in the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from edge.model.types import Operator, Tensor
from firmware_export.plan.abi import Abi

Sizes = Callable[[Operator, Sequence[Tensor]], list[int]]

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


def unsupported_ops(opcodes: Sequence[str]) -> list[str]:
    """The operators among ``opcodes`` that TFLite Micro has no kernel for."""
    return [op for op in opcodes if op not in MICRO_OPS]




@dataclass(frozen=True)
class KernelCost:
    """What one kernel allocates for one operator.

    ``builtin_data`` and ``op_data`` name C structs laid out per ABI (:mod:`.abi`);
    ``op_data_extra`` is what a kernel set's own op data adds to the reference struct (CMSIS-NN
    wraps it: ``struct OpData { OpDataConv reference_op_data; int buffer_idx; }``).
    """

    builtin_data: str | None = None
    op_data: str | None = None
    prepare: Sizes | None = None
    scratch: Mapping[str, Sizes] | None = None  # by kernel set; missing = none
    op_data_extra: Mapping[str, int] = field(default_factory=dict)
    measured: bool = True

    def op_data_size(self, abi: Abi, kernels: str) -> int:
        if self.op_data is None:
            return 0
        size, align = abi.layouts[self.op_data]
        extra = self.op_data_extra.get(kernels, 0)
        return -(-(size + extra) // align) * align if extra else size


def _none(op: Operator, tensors: Sequence[Tensor]) -> list[int]:
    return []


def _output_channels(op: Operator, tensors: Sequence[Tensor]) -> int:
    shape = tensors[op.outputs[0]].shape
    return shape[-1] if shape else 1


def per_channel_quant(op: Operator, tensors: Sequence[Tensor]) -> list[int]:
    """int32 multiplier and shift per output channel (8 bytes a channel, two allocations)."""
    output = tensors[op.outputs[0]]
    if output.dtype not in ("int8", "int16"):
        return []
    channels = _output_channels(op, tensors)
    return [4 * channels, 4 * channels]


def _fully_connected_quant(op: Operator, tensors: Sequence[Tensor]) -> list[int]:
    output = tensors[op.outputs[0]]
    if output.dtype not in ("int8", "int16") or len(op.inputs) < 2:
        return []
    weights = tensors[op.inputs[1]]
    channels = weights.shape[0] if weights.shape else 1
    return [4 * channels, 4 * channels]


def _mean_scratch(op: Operator, tensors: Sequence[Tensor]) -> list[int]:
    source, output = tensors[op.inputs[0]], tensors[op.outputs[0]]
    axes = tensors[op.inputs[1]].size if len(op.inputs) > 1 else 1
    sums = [4 * output.size] if source.dtype in ("int8", "uint8", "int16") else []
    return [*sums, 4 * len(source.shape), 4 * axes]


def _padding(op: Operator) -> bool:
    return op.options.get("padding", "SAME") != "VALID"


def _cmsis_conv_scratch(op: Operator, tensors: Sequence[Tensor]) -> list[int]:
    """``arm_convolve_wrapper_s8_get_buffer_size`` (DSP extension, Cortex-M4/M7)."""
    weights = tensors[op.inputs[1]].shape  # [out, kh, kw, in]
    if len(weights) != 4:
        return []
    _, kh, kw, cin = weights
    strides = (op.options.get("stride_h", 1), op.options.get("stride_w", 1))
    if (kh, kw) == (1, 1) and strides == (1, 1) and not (_padding(op) and kh > 1):
        return []  # arm_convolve_1x1_s8_fast needs no buffer
    cols = kh * kw * cin
    return [2 * 2 * (cols + (-cols) % 4)]


def _cmsis_depthwise_scratch(op: Operator, tensors: Sequence[Tensor]) -> list[int]:
    """``arm_depthwise_conv_wrapper_s8_get_buffer_size`` (DSP extension)."""
    weights = tensors[op.inputs[1]].shape  # [1, kh, kw, out]
    source = tensors[op.inputs[0]].shape
    if len(weights) != 4 or len(source) != 4:
        return []
    _, kh, kw, _ = weights
    multiplier = op.options.get("depth_multiplier", 1) or 1
    dilated = op.options.get("dilation_h_factor", 1) != 1 or op.options.get(
        "dilation_w_factor", 1) != 1
    if multiplier != 1 or dilated or (kh, kw) == (3, 3):
        return []  # arm_depthwise_conv_3x3_s8 / the generic kernel need no buffer
    return [2 * source[3] * kh * kw]


def _cmsis_pool_scratch(op: Operator, tensors: Sequence[Tensor]) -> list[int]:
    return [4 * _output_channels(op, tensors)]


CONV_SCRATCH: dict[str, Sizes] = {"cmsis-nn": _cmsis_conv_scratch, "esp-nn": _cmsis_conv_scratch}
DEPTHWISE_SCRATCH: dict[str, Sizes] = {"cmsis-nn": _cmsis_depthwise_scratch,
                                       "esp-nn": _cmsis_depthwise_scratch}
REDUCE_SCRATCH: dict[str, Sizes] = {k: _mean_scratch for k in ("reference", "cmsis-nn", "esp-nn")}
CMSIS_CONV = {"cmsis-nn": 4}  # + int buffer_idx

KERNELS: dict[str, KernelCost] = {
    "CONV_2D": KernelCost("TfLiteConvParams", "OpDataConv", per_channel_quant, CONV_SCRATCH,
                          CMSIS_CONV),
    "DEPTHWISE_CONV_2D": KernelCost("TfLiteDepthwiseConvParams", "OpDataConv", per_channel_quant,
                                    DEPTHWISE_SCRATCH, CMSIS_CONV),
    # CMSIS-NN: + two buffer indices, kernel_sums pointer, batches, accum_depth, output_depth
    "FULLY_CONNECTED": KernelCost("TfLiteFullyConnectedParams", "OpDataFullyConnected",
                                  _fully_connected_quant, op_data_extra={"cmsis-nn": 24}),
    "ADD": KernelCost("TfLiteAddParams", "OpDataAdd"),
    "MEAN": KernelCost("TfLiteReducerParams", "OpDataReduce", scratch=REDUCE_SCRATCH),
    # CMSIS-NN: CMSISNNSoftmaxParams = SoftmaxParams + num_rows + row_size
    "SOFTMAX": KernelCost("TfLiteSoftmaxParams", "SoftmaxParams",
                          op_data_extra={"cmsis-nn": 8}),
    "QUANTIZE": KernelCost(None, "OpDataQuantizeReference"),
    "AVERAGE_POOL_2D": KernelCost("TfLitePoolParams", "OpDataPooling",
                                  scratch={"cmsis-nn": _cmsis_pool_scratch},
                                  op_data_extra={"cmsis-nn": 4}),
    "MAX_POOL_2D": KernelCost("TfLitePoolParams", "OpDataPooling",
                              op_data_extra={"cmsis-nn": 4}),
    "RESHAPE": KernelCost("TfLiteReshapeParams"),
    # what the patch rewrite adds (firmware_export/patch): SLICE parses nothing, keeps nothing
    "SLICE": KernelCost(),
    "PAD": KernelCost(None, "OpDataPad"),
    "PADV2": KernelCost(None, "OpDataPad"),
    "CONCATENATION": KernelCost("TfLiteConcatenationParams", "OpDataConcatenation"),
    "MUL": KernelCost("TfLiteMulParams", "OpDataMul"),
}

# Operators not in the table: a deliberately generous guess, flagged in the report.
UNKNOWN_OP = KernelCost(measured=False)
UNKNOWN_BUILTIN_DATA = 64
UNKNOWN_OP_DATA = 128


def kernel_cost(opcode: str) -> KernelCost:
    return KERNELS.get(opcode, UNKNOWN_OP)


def scratch_rule(kernels: str) -> Callable[[Operator, Sequence[Tensor]], list[int]]:
    """The scratch-buffer sizes each operator requests with the ``kernels`` set."""

    def rule(op: Operator, tensors: Sequence[Tensor]) -> list[int]:
        per_set = kernel_cost(op.opcode).scratch or {}
        return per_set.get(kernels, _none)(op, tensors)

    return rule
