"""The model reader and analysis on the real reference models (../shared/data/models)."""

from __future__ import annotations

import pytest

from edge.model import read_model
from edge.model.analysis import PARAMS_DEFINITION, analyze, lifetimes
from edge.model.compat import micro_support
from tests.conftest import shared_file

V2_MODELS = ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"]


@pytest.mark.parametrize("name", V2_MODELS)
def test_mobilenet_v2_costs_match_the_paper(name: str) -> None:
    report = analyze(read_model(shared_file(f"models/{name}")))
    assert report.total_macs == pytest.approx(300.8e6, rel=0.005)
    # Parameters: weights and biases of the conv/depthwise/FC layers (batch norm folded).
    assert 3.4e6 <= report.total_params <= 3.6e6
    assert "weight and bias" in PARAMS_DEFINITION


@pytest.mark.parametrize("name", V2_MODELS)
def test_mobilenet_v2_peak_is_the_first_stride2_depthwise(name: str) -> None:
    model = read_model(shared_file(f"models/{name}"))
    report = analyze(model)
    assert report.peak_live_bytes == 1_505_280 == 112 * 112 * 96 + 56 * 56 * 96
    peak = model.main.operators[report.peak_op]
    assert peak.opcode == "DEPTHWISE_CONV_2D"
    assert peak.options["stride_h"] == 2
    first_stride2_dw = next(op for op in model.main.operators
                            if op.opcode == "DEPTHWISE_CONV_2D" and op.options["stride_h"] == 2)
    assert peak.index == first_stride2_dw.index
    assert report.ops[report.peak_op].input_bytes == 112 * 112 * 96


def test_paper_view_reproduces_table_3_at_16_bits() -> None:
    report = analyze(read_model(shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")), 2)
    row = next(r for r in report.resolutions if r.height == 112)
    # MobileNetV2 paper, Table 3: 16 channels / 400K at 112x112 (bottleneck tensors).
    assert row.bottleneck_channels == 16
    assert row.bottleneck_kilobytes == pytest.approx(400, rel=0.01)
    assert row.max_channels == 96


def test_mobilenet_v1_paper_view_is_1600k() -> None:
    # V1 1.0 is not in the reference data; 0.25 has a quarter of the channels: 16 at 64x64.
    report = analyze(read_model(shared_file("models/mobilenet_v1_0.25_128_quant.tflite")), 2)
    row = next(r for r in report.resolutions if r.height == 64)
    assert row.max_channels == 16
    assert row.kilobytes == pytest.approx(64 * 64 * 16 * 2 / 1000)


def test_mobilenet_v1_025_128_costs() -> None:
    report = analyze(read_model(shared_file("models/mobilenet_v1_0.25_128_quant.tflite")))
    # Published: "14 million mult-adds, 0.47 million parameters" (two significant figures).
    # The file's exact count is 13.57 M, which rounds to the published 14 M; 3.1% below it.
    assert round(report.total_macs / 1e6) == 14
    assert report.total_macs == pytest.approx(14e6, rel=0.031)
    assert report.total_params == pytest.approx(0.47e6, rel=0.03)


def test_person_detect_costs_and_micro_support() -> None:
    model = read_model(shared_file("models/person_detect.tflite"))
    report = analyze(model)
    assert report.total_macs == pytest.approx(7.2e6, rel=0.01)
    assert report.micro_runnable, report.micro_reason
    assert model.input_tensors[0].shape == (1, 96, 96, 1)
    assert model.input_tensors[0].dtype == "int8"


@pytest.mark.parametrize("name", ["mobilenet_v2_1.0_224_quant.tflite",
                                  "mobilenet_v1_0.25_128_quant.tflite"])
def test_uint8_models_are_not_runnable_on_micro(name: str) -> None:
    support = micro_support(read_model(shared_file(f"models/{name}")))
    assert not support.runnable
    assert "uint8" in support.reason and "hybrid" in support.reason


def test_int8_ptq_model_is_runnable_on_micro() -> None:
    support = micro_support(read_model(shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite")))
    assert support.runnable, support.reason


def test_edgetpu_model_is_recognised() -> None:
    model = read_model(shared_file("models/mobilenet_v1_0.25_128_quant_edgetpu.tflite"))
    assert model.edgetpu_compiled
    assert model.custom_ops == ["edgetpu-custom-op"]
    support = micro_support(model)
    assert not support.runnable and "Edge TPU" in support.reason
    cpu = read_model(shared_file("models/mobilenet_v1_0.25_128_quant.tflite"))
    assert not cpu.edgetpu_compiled


def test_embedded_labels_match_the_labels_file() -> None:
    model = read_model(shared_file("models/mobilenet_v2_1.0_224_quant.tflite"))
    expected = shared_file("labels/imagenet_labels.txt").read_text().splitlines()
    assert model.labels is not None
    assert list(model.labels) == [line.strip() for line in expected]
    assert model.labels[0] == "background" and len(model.labels) == 1001
    # The labels zip sits after the flatbuffer, whose end the reader records.
    assert model.flatbuffer_size < len(model.content)


def test_custom_op_model_reads_with_its_op_name() -> None:
    model = read_model(shared_file("models/model_invoking_error.tflite"))
    assert model.custom_ops == ["fake-op-double"]
    assert not micro_support(model).runnable


def test_tensor_details() -> None:
    model = read_model(shared_file("models/tf2_mobilenet_v2_1.0_224_ptq.tflite"))
    (inp,), (out,) = model.input_tensors, model.output_tensors
    assert inp.shape == (1, 224, 224, 3) and inp.dtype == "uint8"
    assert out.shape == (1, 1001) and out.dtype == "uint8"
    assert inp.quantization is not None and not inp.quantization.per_channel
    conv = next(op for op in model.main.operators if op.opcode == "CONV_2D")
    weights = model.main.tensors[conv.inputs[1]]
    assert weights.is_constant and weights.dtype == "int8"
    assert weights.quantization is not None and weights.quantization.per_channel
    assert weights.quantization.symmetric
    assert len(weights.quantization.scale) == weights.shape[0]
    assert weights.array().shape == weights.shape
    assert conv.options["padding"] in ("SAME", "VALID")
    assert conv.options["fused_activation_function"] == "RELU6"


def test_lifetimes_follow_tflite_micro() -> None:
    model = read_model(shared_file("models/person_detect.tflite"))
    graph = model.main
    lives = {life.tensor: life for life in lifetimes(graph)}
    last = len(graph.operators) - 1
    for i in graph.inputs:
        assert lives[i].first == 0
    for o in graph.outputs:
        assert lives[o].last == last
    assert all(not graph.tensors[t].is_constant for t in lives)
    for op in graph.operators:
        for t in op.outputs:
            assert lives[t].first == op.index
