"""The arena and flash MobileNetV2 needs at a given width and resolution, without building it.

Used to tell a user whose model does not fit which MobileNetV2 would, and by ``edge-model train
--board`` to choose one: the network's int8 activations are laid out as a chain (with residual
adds) and placed by the same greedy planner, and the tail is estimated from the same per-kernel
costs (8 bytes per output channel of every convolution, op data, node and tensor structs). The
flash estimate counts int8 weights, int32 biases and the per-channel quantization parameters
the converter writes (see :func:`mobilenet_v2_model_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_export.plan.abi import default_abi
from firmware_export.plan.planner import GreedyMemoryPlanner, align_up

# (expansion t, channels c, repeats n, first stride s), from the MobileNetV2 paper, Table 2.
BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1))
WIDTHS = (1.4, 1.3, 1.0, 0.75, 0.5, 0.35)
RESOLUTIONS = (224, 192, 160, 128, 96)
CLASSES = 1001


def make_divisible(value: float, divisor: int = 8) -> int:
    """Keras/TF-slim channel rounding: nearest multiple of 8, never below 90% of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class FamilyArena:
    width: float
    resolution: int
    head: int
    tail: int

    @property
    def total(self) -> int:
        return self.head + self.tail

    @property
    def label(self) -> str:
        return member_label(self.width, self.resolution)

    @property
    def size_key(self) -> tuple[float, float]:
        return member_order(self.width, self.resolution)


def member_label(width: float, resolution: int) -> str:
    """``MobileNetV2 0.35/96``: one member of the family."""
    return f"MobileNetV2 {width:g}/{resolution}"


def member_order(width: float, resolution: int) -> tuple[float, float]:
    """Orders the family's members by activations (width x resolution^2), then width."""
    return (width * resolution ** 2, width)


class _Chain:
    """Operators of a single-input network, recording TFLM lifetimes of their outputs."""

    def __init__(self, input_bytes: int) -> None:
        self.sizes = [input_bytes]
        self.first = [0]
        self.last = [0]
        self.channels: list[int] = []

    def op(self, out_bytes: int, *inputs: int, channels: int = 0) -> int:
        scope = len(self.channels) + 1
        for t in inputs:
            self.last[t] = max(self.last[t], scope)
        self.sizes.append(out_bytes)
        self.first.append(scope)
        self.last.append(scope)
        self.channels.append(channels)
        return len(self.sizes) - 1


def _network(width: float, resolution: int, classes: int = CLASSES) -> _Chain:
    side = resolution // 2
    channels = make_divisible(32 * width)
    net = _Chain(resolution * resolution * 3)
    x = net.op(side * side * channels, 0, channels=channels)
    for t, c, n, s in BLOCKS:
        out = make_divisible(c * width)
        for i in range(n):
            stride = s if i == 0 else 1
            y = x
            if t != 1:
                y = net.op(side * side * channels * t, y, channels=channels * t)
            side = -(-side // stride)
            y = net.op(side * side * channels * t, y, channels=channels * t)
            y = net.op(side * side * out, y, channels=out)
            if stride == 1 and channels == out:
                y = net.op(side * side * out, x, y)
            x, channels = y, out
    last = make_divisible(1280 * width) if width > 1.0 else 1280
    x = net.op(side * side * last, x, channels=last)
    x = net.op(last, x)
    x = net.op(classes, x, channels=classes)
    x = net.op(classes, x)
    net.last[x] = len(net.channels)
    return net


def mobilenet_v2_arena(width: float, resolution: int, pointer_size: int = 4,
                       classes: int = CLASSES) -> FamilyArena:
    """Predicted head and tail of an int8 MobileNetV2 at ``width`` and ``resolution``."""
    net = _network(width, resolution, classes)
    planner = GreedyMemoryPlanner()
    for size, first, last in zip(net.sizes, net.first, net.last, strict=True):
        planner.add_buffer(align_up(size), first, last)
    abi = default_abi(pointer_size)
    convs = [c for c in net.channels if c]
    tail = sum(abi.size(obj) for obj in abi.allocator_objects)
    tail += abi.size("TfLiteEvalTensor") * (len(net.sizes) + 2 * len(convs))
    tail += abi.size("NodeAndRegistration") * len(net.channels)
    tail += sum(abi.size("TfLiteConvParams") + align_up(abi.size("OpDataConv"))
                + 2 * align_up(4 * c) for c in convs)
    tail += 96 * (len(net.channels) - len(convs)) + 512
    return FamilyArena(width, resolution, planner.max_size(), align_up(tail))


def _convolutions(width: float, classes: int) -> list[tuple[int, int]]:
    """(weights, output channels) of every convolution and the classifier, as Keras builds it."""
    channels = make_divisible(32 * width)
    convs = [(9 * 3 * channels, channels)]
    for t, c, n, _ in BLOCKS:
        out = make_divisible(int(c * width))
        for _ in range(n):
            hidden = channels * t
            if t != 1:
                convs.append((channels * hidden, hidden))
            convs += [(9 * hidden, hidden), (hidden * out, out)]
            channels = out
    last = make_divisible(1280 * width) if width > 1.0 else 1280
    return [*convs, (channels * last, last), (last * classes, classes)]


# Converter output per output channel of a convolution: an int32 bias, and per-channel scale
# (float32) and zero point (int64) for both the weights and the bias. Per tensor: name, shape,
# quantization and buffer tables (Keras' long tensor names dominate). Fitted to the demo model,
# a tensorflow-cpu 2.21 conversion of Keras' MobileNetV2 0.35/96 with 11 classes: 660,752 B
# (estimate 660,548 B); the tests compare it with the models they train.
PER_CHANNEL_BYTES = 4 + 2 * (4 + 8)
PER_TENSOR_BYTES = 336
FIXED_BYTES = 8 * 1024


def mobilenet_v2_model_bytes(width: float, classes: int = CLASSES) -> int:
    """Predicted size of an int8 ``.tflite`` of Keras' MobileNetV2 (weights do not depend on the
    resolution)."""
    convs = _convolutions(width, classes)
    weights = sum(w for w, _ in convs)
    channels = sum(c for _, c in convs)
    # Each convolution has weights, bias and output tensors; plus adds, pooling, softmax.
    tensors = 3 * len(convs) + 16
    return weights + PER_CHANNEL_BYTES * channels + PER_TENSOR_BYTES * tensors + FIXED_BYTES


def family(pointer_size: int = 4, classes: int = CLASSES) -> list[FamilyArena]:
    """Every width x resolution of the family with its predicted arena."""
    return [mobilenet_v2_arena(w, r, pointer_size, classes) for w in WIDTHS for r in RESOLUTIONS]


def largest_fitting(ram: int, pointer_size: int = 4, *, flash: int | None = None,
                    classes: int = CLASSES) -> FamilyArena | None:
    """The MobileNetV2 with the most activations (width x resolution^2) whose arena fits ``ram``
    and, when ``flash`` is given, whose model fits ``flash`` bytes."""
    fitting = [f for f in family(pointer_size, classes) if f.total <= ram
               and (flash is None or mobilenet_v2_model_bytes(f.width, classes) <= flash)]
    return max(fitting, key=lambda f: f.size_key, default=None)
