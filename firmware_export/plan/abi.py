"""Sizes and alignments of TFLM's C structs per compiler ABI, as the compilers lay them out.

Measured with ``sizeof``/``alignof`` on TFLM's own headers (``tests/test_tflm_abi.py`` compiles
the same probe with each compiler and checks this table):

* ``x86-64``: ``g++`` on the 64-bit host build;
* ``pip``: the x86-64 ``tflite-micro`` package, which uses the recording allocator classes
  (larger allocator objects, everything else as ``x86-64``);
* ``x86-32``: ``g++ -m32`` (4-byte pointers, 4-byte enums, 8-byte integers aligned to 4);
* ``arm-eabi``: ``arm-none-eabi-g++``: 4-byte pointers, ``-fshort-enums`` (an enum takes the
  smallest integer that holds its values: ``TfLiteTensor`` is 32 B, not 40) and 8-byte integers
  aligned to 8.

Xtensa (ESP32-S3) has no compiler here; its prediction uses ``x86-32``, which the 32-bit host
build verifies (Xtensa aligns 8-byte integers to 8 like ``arm-eabi``: a few bytes of op data).
"""

from __future__ import annotations

from dataclasses import dataclass

Layout = tuple[int, int]  # (sizeof, alignof)

_SHARED: dict[str, Layout] = {
    "TfLiteConvParams": (28, 4), "TfLiteDepthwiseConvParams": (28, 4),
    "TfLiteReducerParams": (1, 1), "TfLiteSoftmaxParams": (4, 4), "TfLitePoolParams": (40, 4),
    "TfLiteReshapeParams": (36, 4), "OpDataAdd": (60, 4), "OpDataReduce": (44, 4),
    "OpDataPooling": (32, 4),
    # the patch rewrite's operators (PAD's OpData, MUL's OpDataMul: no pointers)
    "TfLiteConcatenationParams": (8, 4), "OpDataPad": (56, 4), "OpDataMul": (36, 4),
}

_LP64: dict[str, Layout] = {
    **_SHARED,
    "SingleArenaBufferAllocator": (72, 8), "GreedyMemoryPlanner": (72, 8),
    "MicroAllocator": (72, 8), "MicroBuiltinDataAllocator": (16, 8),
    "SubgraphAllocations": (16, 8), "TfLiteEvalTensor": (24, 8),
    "NodeAndRegistration": (64, 8), "TfLiteTensor": (64, 8),
    "TfLiteAffineQuantization": (24, 8), "AllocationInfo": (32, 8),
    "ScratchBufferHandle": (8, 8), "ScratchBufferRequest": (16, 8), "pointer": (8, 8),
    "TfLiteFullyConnectedParams": (16, 4), "TfLiteAddParams": (8, 4), "TfLiteMulParams": (4, 4),
    "OpDataConv": (72, 8), "OpDataFullyConnected": (64, 8), "OpDataQuantizeReference": (32, 8),
    "SoftmaxParams": (80, 8), "OpDataConcatenation": (40, 8),
}

_ILP32: dict[str, Layout] = {
    **_SHARED,
    "SingleArenaBufferAllocator": (36, 4), "GreedyMemoryPlanner": (44, 4),
    "MicroAllocator": (36, 4), "MicroBuiltinDataAllocator": (8, 4),
    "SubgraphAllocations": (8, 4), "TfLiteEvalTensor": (12, 4),
    "NodeAndRegistration": (32, 4), "TfLiteTensor": (40, 4),
    "TfLiteAffineQuantization": (12, 4), "AllocationInfo": (24, 4),
    "ScratchBufferHandle": (4, 4), "ScratchBufferRequest": (12, 4), "pointer": (4, 4),
    "TfLiteFullyConnectedParams": (16, 4), "TfLiteAddParams": (8, 4), "TfLiteMulParams": (4, 4),
    "OpDataConv": (56, 4), "OpDataFullyConnected": (48, 4), "OpDataQuantizeReference": (24, 4),
    "SoftmaxParams": (56, 4), "OpDataConcatenation": (24, 4),
}

_ARM: dict[str, Layout] = {
    **_ILP32,
    "TfLiteTensor": (32, 4), "TfLiteFullyConnectedParams": (5, 1), "TfLiteAddParams": (2, 1),
    "TfLiteMulParams": (1, 1), "OpDataQuantizeReference": (32, 8), "SoftmaxParams": (56, 8),
}


@dataclass(frozen=True)
class Abi:
    """One compiler ABI: pointer size and the layout of every struct the tail model uses."""

    name: str
    pointer_size: int
    layouts: dict[str, Layout]
    allocator_objects: tuple[str, ...] = ("SingleArenaBufferAllocator", "GreedyMemoryPlanner",
                                          "MicroAllocator")

    def size(self, struct: str) -> int:
        return self.layouts[struct][0]

    def align(self, struct: str) -> int:
        return self.layouts[struct][1]


ABIS: dict[str, Abi] = {
    "x86-64": Abi("x86-64", 8, _LP64),
    # Traced on the package (gdb on every arena allocation): its recording allocator classes,
    # and a newer TFLM than ../shared/tflm's, whose conv and fully-connected structs are larger.
    "pip": Abi("pip", 8, {**_LP64, "RecordingSingleArenaBufferAllocator": (104, 8),
                          "RecordingMicroAllocator": (272, 8),
                          "MicroBuiltinDataAllocator": (24, 8),
                          "TfLiteFullyConnectedParams": (32, 8), "OpDataConv": (80, 8),
                          "OpDataFullyConnected": (72, 8),
                          # built with USE_TFLM_COMPRESSION: + int scratch_indices[10]
                          "OpDataConcatenation": (80, 8)},
               ("RecordingSingleArenaBufferAllocator", "GreedyMemoryPlanner",
                "RecordingMicroAllocator")),
    "x86-32": Abi("x86-32", 4, _ILP32),
    "arm-eabi": Abi("arm-eabi", 4, _ARM),
}


def get_abi(name: str) -> Abi:
    """The ABI called ``name``.

    Raises:
        ValueError: unknown name.
    """
    try:
        return ABIS[name]
    except KeyError:
        raise ValueError(f"ABI (={name!r}) must be one of {', '.join(ABIS)}") from None


def default_abi(pointer_size: int, cpu: str = "") -> Abi:
    """The ABI a board's firmware is built with: Arm for Cortex-M, else by pointer size."""
    if cpu.startswith("cortex-m") or (pointer_size == 4 and not cpu):
        return ABIS["arm-eabi"]
    return ABIS["x86-64"] if pointer_size == 8 else ABIS["x86-32"]
