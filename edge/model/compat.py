"""Which runtimes can run a model, decided from the file alone."""

from __future__ import annotations

from edge.model.types import MicroSupport, Model

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
MICRO_ACTIVATION_TYPES = ("int8", "int16", "float32", "int32", "bool")


def micro_support(model: Model) -> MicroSupport:
    """Whether TFLite Micro can run ``model``: int8/int16 (or float32) with symmetric weights.

    TFLM has no kernels for uint8 asymmetric ("hybrid") quantized ops, nor for custom ops
    such as ``edgetpu-custom-op``; it refuses them at prepare time.
    """
    if model.custom_ops:
        hint = (" (the model was compiled for the Edge TPU; export the CPU model instead)"
                if model.edgetpu_compiled else "")
        return MicroSupport(False, f"custom ops {', '.join(model.custom_ops)} have no TFLite "
                                   f"Micro kernel{hint}")
    graph = model.main
    for op in graph.operators:
        if op.opcode not in WEIGHTED_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        weights = graph.tensors[op.inputs[1]]
        if weights.dtype == "uint8":
            return MicroSupport(False, f"operator {op.index} ({op.opcode}) has uint8 weights: a "
                                       "uint8 asymmetric (hybrid) model, which TFLite Micro does "
                                       "not support; a .tflite cannot be re-quantized: quantize "
                                       "the float Keras model to int8 with `edge-model quantize "
                                       "MODEL.keras` (or train one with `edge-model train`)")
        quant = weights.quantization
        if weights.dtype in ("int8", "int16") and quant is not None and not quant.symmetric:
            return MicroSupport(False, f"operator {op.index} ({op.opcode}) has asymmetric "
                                       f"{weights.dtype} weights; TFLite Micro needs symmetric "
                                       "weights (zero point 0)")
        output = graph.tensors[op.outputs[0]]
        if output.dtype not in MICRO_ACTIVATION_TYPES:
            return MicroSupport(False, f"operator {op.index} ({op.opcode}) computes in "
                                       f"{output.dtype}; TFLite Micro runs int8, int16 and "
                                       "float32 models")
    return MicroSupport(True, "int8/int16/float32 operators with symmetric weights")
