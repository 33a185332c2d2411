"""The arena MobileNetV2 needs at a given width and resolution, planned without building it.

Used to tell a user whose model does not fit which MobileNetV2 would: the network's int8
activations are laid out as a chain (with residual adds) and placed by the same greedy planner,
and the tail is estimated from the same per-kernel costs (8 bytes per output channel of every
convolution, op data, node and tensor structs).
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
        return f"MobileNetV2 {self.width:g}/{self.resolution}"


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


def _network(width: float, resolution: int) -> _Chain:
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
    x = net.op(CLASSES, x, channels=CLASSES)
    x = net.op(CLASSES, x)
    net.last[x] = len(net.channels)
    return net


def mobilenet_v2_arena(width: float, resolution: int, pointer_size: int = 4) -> FamilyArena:
    """Predicted head and tail of an int8 MobileNetV2 at ``width`` and ``resolution``."""
    net = _network(width, resolution)
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


def largest_fitting(ram: int, pointer_size: int = 4) -> FamilyArena | None:
    """The MobileNetV2 with the most activations (width x resolution^2) whose arena fits."""
    fitting = [mobilenet_v2_arena(w, r, pointer_size) for w in WIDTHS for r in RESOLUTIONS]
    fitting = [f for f in fitting if f.total <= ram]
    return max(fitting, key=lambda f: (f.width * f.resolution ** 2, f.width), default=None)
