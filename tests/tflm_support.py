"""Real TFLM for tests: the pinned trees in ../shared/tflm, unpacked and built into the cache.

The first run builds each library once (minutes); later runs find it in the cache
(``~/.cache/edge/tflm`` or ``$EDGE_CACHE_DIR``), so the suite stays fast. Only the builds the
tests need: the 64-bit host with reference kernels and Cortex-M4 with CMSIS-NN (nano33ble), and
of each only the kernels of :data:`SUITE_OPS`. A test module's fixture builds that library
before its tests (fixture time is no test's timeout); ``edge-export --verify`` inside a test
then builds a library for its model's own operators from the objects already compiled.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import pytest

from firmware_export.tflm.build import Library, build_library
from firmware_export.tflm.targets import get_target
from firmware_export.tflm.tree import TflmTree, locate_tree
from tests.conftest import SHARED, need_tool

TREES = {"reference": "tflm_tree.tar.gz", "cmsis-nn": "tflm_tree_cmsis_nn.tar.gz"}
# The operators of every model the suite builds TFLM programs for: person_detect (and its tiled
# rewrite: + SLICE, PAD, CONCATENATION), the demo model, the tiny models (tests/tiny_models.py), the
# test detectors (tests/detector_models.py) and test_arena_tflm's small MobileNetV2 blocks.
# tests/test_tflm_build.py checks the shared models' operators are in it.
SUITE_OPS = ("ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
             "DEQUANTIZE", "FULLY_CONNECTED", "MEAN", "MUL", "PACK", "PAD", "QUANTIZE",
             "RESHAPE", "SHAPE", "SLICE", "SOFTMAX", "STRIDED_SLICE")


def tflm_tree(kernels: str = "reference") -> TflmTree:
    """A pinned tree from ../shared/tflm, or skip saying what is missing."""
    archive = SHARED / "tflm" / TREES[kernels]
    if not archive.is_file():
        pytest.skip(f"the pinned TFLM tree {archive} is absent (CI always has ../shared/tflm)")
    return _tree(str(archive))


@functools.cache
def _tree(archive: str) -> TflmTree:
    return locate_tree(archive)


def tflm_library(target: str, kernels: str = "reference",
                 opcodes: Sequence[str] = SUITE_OPS) -> Library:
    """The cached library for ``target`` with the kernels of ``opcodes`` (built now the first
    time)."""
    spec = get_target(target)
    need_tool(spec.cxx, "Debian: g++ / g++-multilib / gcc-arm-none-eabi")
    if spec.is_arm:
        need_tool("qemu-system-arm", "apt-get install --no-install-recommends qemu-system-arm")
    return _library(target, kernels, tuple(sorted(set(opcodes))))


@functools.cache
def _library(target: str, kernels: str, opcodes: tuple[str, ...]) -> Library:
    return build_library(tflm_tree(kernels), get_target(target), opcodes)
