"""Offline plans: better than TFLM's greedy placement, written into the model, honoured by TFLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ExportError
from edge.model import read_model
from edge.modelbuild.quantize import quantize_keras
from firmware_export.plan.arena import plan_arena, plan_memory
from firmware_export.plan.embed import with_metadata
from firmware_export.plan.lifetimes import read_offline_offsets
from firmware_export.plan.offline import (
    METADATA_NAME,
    check_offline_plan,
    find_offline_plan,
    metadata_words,
)
from tests.conftest import shared_file

KIB = 1024


def test_metadata_words_layout() -> None:
    words = metadata_words([0, -1, 48])
    assert words == bytes.fromhex("01000000 01000000 03000000 00000000 ffffffff 30000000")


def test_mobilenet_v1_quarter_fits_96_kib_instead_of_128() -> None:
    model = read_model(shared_file("models/mobilenet_v1_0.25_128_quant.tflite"))
    greedy = plan_memory(model)
    assert greedy.head == 128 * KIB
    assert greedy.lower_bound == 96 * KIB
    plan = find_offline_plan(model)
    assert plan is not None and plan.head == 96 * KIB and plan.saving == 32 * KIB
    offline = plan_memory(model, offline=plan.offsets)
    check_offline_plan(offline)
    assert all(o % 16 == 0 for o in plan.offsets if o >= 0)


def test_written_plan_reads_back_and_is_used() -> None:
    model = read_model(shared_file("models/mobilenet_v1_0.25_128_quant.tflite"))
    plan = find_offline_plan(model)
    assert plan is not None
    written = read_model(with_metadata(model.content, METADATA_NAME,
                                       metadata_words(plan.offsets)))
    assert read_offline_offsets(written) == list(plan.offsets)
    assert plan_memory(written).head == 96 * KIB  # the model's own metadata is honoured
    # the rest of the model is unchanged
    assert [t.shape for t in written.main.tensors] == [t.shape for t in model.main.tensors]
    assert all(bytes(a.data or b"") == bytes(b.data or b"")
               for a, b in zip(written.main.tensors, model.main.tensors, strict=True))


def test_overlapping_or_unaligned_plans_are_refused() -> None:
    model = read_model(shared_file("models/person_detect.tflite"))
    n = len(model.main.tensors)
    greedy = plan_memory(model)
    clash = [-1] * n
    for b in greedy.buffers:
        clash[b.tensor] = 0
    with pytest.raises(ValueError, match="overlaps"):
        plan_memory(model, offline=clash)
    unaligned = [-1] * n
    unaligned[greedy.buffers[0].tensor] = 8
    with pytest.raises(ExportError, match="16-aligned"):
        check_offline_plan(plan_memory(model, offline=unaligned))


def build_v1_net(path: Path) -> None:
    """MobileNetV1 0.25 at 128x128 (no batch norm, random He-normal weights), int8."""
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(1)
    layers = tf.keras.layers
    inputs = tf.keras.Input((128, 128, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inputs)
    for out, stride in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                        (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6",
                                   depthwise_initializer="he_normal")(x)
        x = layers.Conv2D(out // 4, 1, activation="relu6", kernel_initializer="he_normal")(x)
    net = tf.keras.Model(inputs, layers.Dense(4)(layers.GlobalAveragePooling2D()(x)))

    rng = np.random.default_rng(0)
    samples = [rng.uniform(-1, 1, (128, 128, 3)) for _ in range(2)]
    path.write_bytes(quantize_keras(net, samples))


@pytest.mark.slow
def test_offline_plan_runs_on_tflm_with_the_predicted_arena(tmp_path: Path) -> None:
    pytest.importorskip("tflite_micro", reason="needs the tflite-micro package (the mcu extra)")
    pytest.importorskip("tensorflow", reason="building the int8 model needs tensorflow")
    from firmware_export.verify.checks import MAX_LSB, max_lsb
    from firmware_export.verify.children import litert_outputs, pip_minimum, pip_outputs
    from firmware_export.verify.ladder import sample_inputs

    source = tmp_path / "v1.tflite"
    build_v1_net(source)
    model = read_model(source)
    plan = find_offline_plan(model)
    assert plan is not None and plan.head == 96 * KIB < plan.greedy_head == 128 * KIB
    exported = tmp_path / "v1_offline.tflite"
    exported.write_bytes(with_metadata(model.content, METADATA_NAME,
                                       metadata_words(plan.offsets)))
    written = read_model(exported)
    predicted = plan_arena(written, abi="pip")
    assert predicted.plan.head == 96 * KIB
    measured = pip_minimum(exported, predicted.size, low=predicted.plan.head)
    assert measured <= predicted.minimum <= measured * 1.02
    assert measured < plan_arena(model, abi="pip").minimum - 30 * KIB  # TFLM really uses the plan
    inputs = sample_inputs(written)
    tflm = pip_outputs(exported, predicted.size, inputs)
    litert = litert_outputs(exported, inputs)
    assert not isinstance(litert, str), litert
    assert max_lsb(tflm, litert) <= MAX_LSB
