"""Start training from the weights inside a quantized MobileNetV2 ``.tflite``.

Offline, the only ImageNet weights on a machine may be an int8 or uint8 MobileNetV2 classifier
(TensorFlow Hub's ``tf2_mobilenet_v2_1.0_224_ptq.tflite``, per-channel int8; the older
``mobilenet_v2_1.0_224_quant.tflite``, per-tensor uint8 with zero points). Their convolutions
carry the batch normalisation folded in: ``w' = w * gamma / sqrt(var + eps)`` and one bias
``b' = beta - mean * gamma / sqrt(var + eps)``. This module

* reads the file with :func:`edge.model.reader.read_model` and lists its convolutions
  (``CONV_2D``, ``DEPTHWISE_CONV_2D``) in graph order;
* checks them, one by one, against Keras' MobileNetV2 of the same width (kernel shapes, strides,
  activations): the 52 convolutions of the backbone, then the 1x1 classifier, which is dropped
  (a new head is trained);
* dequantizes every kernel and bias (``scale x (q - zero_point)``, per channel or per tensor);
* unfolds each batch norm into a layer the fine-tuning can use: the Keras convolution gets the
  folded kernel, its batch norm ``gamma = 1, beta = folded bias, mean = 0,
  var = 1 - eps`` (so it computes ``x + bias`` exactly).

Weights do not depend on the input size, so any ``--resolution`` works (ImageNet's were learned
at 224). :func:`tflite_alpha` reads the width from the file for ``edge-model train``'s default.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError, TrainingError
from edge.model.reader import read_model
from edge.model.types import Model, Operator, Tensor

log = logging.getLogger(__name__)

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# (filters, stride, expansion) of Keras' 17 inverted-residual blocks (block 0 is
# "expanded_conv", then block_1 .. block_16).
BLOCKS: tuple[tuple[int, int, int], ...] = (
    (16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6),
    (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6),
    (160, 1, 6), (160, 1, 6), (320, 1, 6))


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of MobileNetV2 as Keras names and shapes it.

    ``kernel`` is Keras' kernel shape: (kh, kw, in, out) for a convolution, (kh, kw, channels,
    1) for a depthwise one; ``relu6`` whether ReLU6 follows its batch norm.
    """

    layer: str
    bn: str
    depthwise: bool
    kernel: tuple[int, int, int, int]
    stride: int
    relu6: bool


def make_divisible(value: float, divisor: int = 8) -> int:
    """Keras' rounding of channel counts (MobileNetV2's ``_make_divisible``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenetv2_convs(alpha: float) -> list[ConvSpec]:
    """The 52 convolutions of Keras' MobileNetV2 without top, in graph order."""
    channels = make_divisible(32 * alpha)
    convs = [ConvSpec("Conv1", "bn_Conv1", False, (3, 3, 3, channels), 2, True)]
    for number, (filters, stride, expansion) in enumerate(BLOCKS):
        prefix = f"block_{number}_" if number else "expanded_conv_"
        out = make_divisible(int(filters * alpha))
        width = channels * expansion
        if number:
            convs.append(ConvSpec(f"{prefix}expand", f"{prefix}expand_BN", False,
                                  (1, 1, channels, width), 1, True))
        convs.append(ConvSpec(f"{prefix}depthwise", f"{prefix}depthwise_BN", True,
                              (3, 3, width, 1), stride, True))
        convs.append(ConvSpec(f"{prefix}project", f"{prefix}project_BN", False,
                              (1, 1, width, out), 1, False))
        channels = out
    last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    convs.append(ConvSpec("Conv_1", "Conv_1_bn", False, (1, 1, channels, last), 1, True))
    return convs


@dataclass(frozen=True)
class FoldedConv:
    """A convolution of the file: its operator, dequantized kernel (Keras layout) and bias."""

    op: Operator
    kernel: np.ndarray
    bias: np.ndarray
    stride: int
    relu6: bool


def dequantize(tensor: Tensor) -> np.ndarray:
    """Real values of a constant tensor: ``scale x (q - zero_point)`` per channel or tensor."""
    values = tensor.array().astype(np.float32)
    if tensor.dtype in ("float32", "float16"):
        return values
    q = tensor.quantization
    if q is None:
        raise ModelError(f"tensor {tensor.name!r} is {tensor.dtype} without quantization")
    shape = [1] * values.ndim
    if q.per_channel:
        axis = q.axis
        if not 0 <= axis < values.ndim or values.shape[axis] != len(q.scale):
            # Some converters copy the kernel's axis (3) onto the 1-D bias.
            fits = [i for i, n in enumerate(values.shape) if n == len(q.scale)]
            if len(fits) != 1:
                raise ModelError(f"tensor {tensor.name!r} {values.shape}: {len(q.scale)} "
                                 f"scales do not fit its axis {q.axis}")
            axis = fits[0]
        shape[axis] = len(q.scale)
    scale = np.asarray(q.scale, np.float32).reshape(shape)
    zero = np.asarray(q.zero_point, np.float32).reshape(shape)
    return ((values - zero) * scale).astype(np.float32)


def folded_convs(model: Model) -> list[FoldedConv]:
    """Every convolution of the main graph with constant weights, in graph order."""
    graph = model.main
    convs = []
    for op in graph.operators:
        if op.opcode not in CONV_OPS or len(op.inputs) < 2:
            continue
        weight = graph.tensors[op.inputs[1]]
        if not weight.is_constant or len(weight.shape) != 4:
            continue
        kernel = dequantize(weight)
        if op.opcode == "DEPTHWISE_CONV_2D":  # (1, kh, kw, C) -> (kh, kw, C, 1)
            kernel = np.transpose(kernel, (1, 2, 3, 0))
        else:  # (out, kh, kw, in) -> (kh, kw, in, out)
            kernel = np.transpose(kernel, (1, 2, 3, 0))
        bias_index = op.inputs[2] if len(op.inputs) > 2 else -1
        bias = (dequantize(graph.tensors[bias_index]).reshape(-1) if bias_index >= 0
                else np.zeros(kernel.shape[-1] if op.opcode == "CONV_2D" else kernel.shape[2],
                              np.float32))
        stride = int(op.options.get("stride_h", 1))
        relu6 = op.options.get("fused_activation_function") == "RELU6"
        convs.append(FoldedConv(op, kernel, bias, stride, relu6))
    return convs


def _convs(path: Path) -> list[FoldedConv]:
    try:
        return folded_convs(read_model(path))
    except ModelError as e:
        raise TrainingError(f"--weights {e}") from None


def _not_mobilenet(path: Path, why: str) -> TrainingError:
    return TrainingError(f"{path}: not a quantized MobileNetV2 classifier ({why}); --weights "
                         "takes tf2_mobilenet_v2_*.tflite or mobilenet_v2_*_quant.tflite files")


def _matches(convs: list[FoldedConv], specs: list[ConvSpec]) -> str | None:
    """Why ``convs`` (the backbone part) do not map onto ``specs``, or None when they do."""
    if len(convs) < len(specs):
        return f"{len(convs)} convolutions, MobileNetV2 has {len(specs)}"
    for number, (conv, spec) in enumerate(zip(convs, specs, strict=False)):
        depthwise = conv.op.opcode == "DEPTHWISE_CONV_2D"
        if (depthwise != spec.depthwise or tuple(conv.kernel.shape) != spec.kernel
                or conv.stride != spec.stride or conv.relu6 != spec.relu6):
            return (f"convolution {number + 1} ({conv.op.opcode} {tuple(conv.kernel.shape)}, "
                    f"stride {conv.stride}) is not Keras' {spec.layer} {spec.kernel}, "
                    f"stride {spec.stride}")
    return None


def tflite_alpha(path: Path) -> float:
    """The width multiplier of the MobileNetV2 in ``path``.

    Raises:
        TrainingError: not a readable model, or no MobileNetV2 width matches its convolutions.
    """
    from edge.modelbuild.build import ALPHAS

    convs = _convs(path)
    for alpha in ALPHAS:
        if _matches(convs, mobilenetv2_convs(alpha)) is None:
            return alpha
    first = convs[0].kernel.shape if convs else "none"
    raise _not_mobilenet(path, f"{len(convs)} convolutions, the first {first}, match no "
                               "MobileNetV2 width")


def load_tflite_backbone(path: Path, backbone: Any, alpha: float) -> int:
    """Set the weights of a Keras MobileNetV2 backbone (without top, width ``alpha``) from the
    quantized classifier in ``path``. Returns how many convolutions were set (52).

    Raises:
        TrainingError: the file is not a MobileNetV2 of width ``alpha`` (one line naming the
            first layer that differs and the file's own width when it has one).
    """
    convs = _convs(path)
    specs = mobilenetv2_convs(alpha)
    why = _matches(convs, specs)
    if why is not None:
        try:
            own = f"; its width is {tflite_alpha(path):g}, pass --alpha {tflite_alpha(path):g}"
        except TrainingError:
            own = ""
        raise _not_mobilenet(path, f"for MobileNetV2 {alpha:g}: {why}{own}")
    extra = len(convs) - len(specs)
    if extra > 1:
        raise _not_mobilenet(path, f"{extra} convolutions after MobileNetV2's last")
    for conv, spec in zip(convs, specs, strict=False):
        layer = backbone.get_layer(spec.layer)
        bn = backbone.get_layer(spec.bn)
        kernel = conv.kernel
        layer.set_weights([kernel] + ([np.zeros(kernel.shape[-2 if spec.depthwise else -1],
                                                np.float32)] if layer.use_bias else []))
        eps = float(bn.epsilon)
        n = len(conv.bias)
        bn.set_weights([np.ones(n, np.float32), conv.bias.astype(np.float32),
                        np.zeros(n, np.float32), np.full(n, 1.0 - eps, np.float32)])
    log.info("%s: %d convolutions dequantized into MobileNetV2 %g (batch norm unfolded)",
             path, len(specs), alpha)
    return len(specs)


def classifier_head(path: Path, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(kernel (features, classes), bias) of the file's 1x1 classifier after the backbone:
    with global average pooling and a dense layer it rebuilds the whole ImageNet model (tests
    compare it with the .tflite itself)."""
    convs = _convs(path)
    specs = mobilenetv2_convs(alpha)
    if len(convs) != len(specs) + 1:
        raise _not_mobilenet(path, "no 1x1 classifier after the backbone")
    head = convs[-1]
    return head.kernel[0, 0], head.bias
