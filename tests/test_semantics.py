"""Semantic checks: well-formed but wrong models are refused by the reader, real ones pass."""

from __future__ import annotations

import numpy as np
import pytest

from edge.demo import model_path
from edge.errors import ModelError
from edge.model import Quantization, Tensor, read_model
from edge.model.semantics import check_quantization
from tests.conftest import shared_file
from tests.model_mutants import named_mutants, representative

REAL = ["models/person_detect.tflite", "models/tf2_mobilenet_v2_1.0_224_ptq.tflite",
        "models/mobilenet_v2_1.0_224_quant.tflite", "models/mobilenet_v1_0.25_128_quant.tflite",
        "models/mobilenet_v1_0.25_128_quant_edgetpu.tflite",
        "models/model_invoking_error.tflite"]
# What each named mutant's message must say: the rule it broke.
EXPECTED = {
    "scale 0": "quantization scale 0 is outside", "scale 1e38": "scale 1e+38 is outside",
    "scale 1.1e15": "scale 1.1e+15 is outside", "activation scale 0": "scale 0 is outside",
    "zero point 300": "zero point 300 is outside", "zero point -129": "zero point -129",
    "depthwise without bias": "(DEPTHWISE_CONV_2D): has 2 inputs, needs 3",
    "conv with one input": "(CONV_2D): has 1 inputs, needs 3",
    "bias index -1": "input 2 is -1 (absent)", "input index -1": "input 0 is -1 (absent)",
    "softmax as batch_matmul": "(BATCH_MATMUL): has 1 inputs, needs 2",
    "stride 0": "is 0; it must be >= 1", "stride -7": "is -7; it must be >= 1",
    "dilation 0": "is 0; it must be >= 1", "huge input shape": "absurdly large",
    "channel mismatch": "", "per-channel count": "scales",
}


@pytest.mark.parametrize("relative", REAL)
def test_real_models_pass(relative: str) -> None:
    assert read_model(shared_file(relative)).main.tensors


def test_demo_model_passes() -> None:
    assert read_model(model_path()).main.operators


def test_person_detect_quantized_dimension_quirk_is_accepted() -> None:
    # Its per-channel biases say quantized_dimension=3 on rank-1 tensors: TFLM runs it.
    model = read_model(shared_file("models/person_detect.tflite"))
    odd = [t for t in model.main.tensors if t.quantization is not None
           and t.quantization.per_channel and t.quantization.axis >= len(t.shape)]
    assert odd


@pytest.mark.parametrize("base", ["demo", "models/person_detect.tflite",
                                  "models/tf2_mobilenet_v2_1.0_224_ptq.tflite"])
def test_named_mutants_are_refused_with_the_rule_they_break(base: str) -> None:
    path = model_path() if base == "demo" else shared_file(base)
    mutants = named_mutants(path.read_bytes())
    assert len(mutants) >= 14, sorted(mutants)
    for name, content in mutants.items():
        with pytest.raises(ModelError) as info:
            read_model(content, name=name)
        message = str(info.value)
        assert message.startswith(f"{name}: ") and "\n" not in message
        assert EXPECTED[name] in message, (name, message)


def test_random_semantic_mutants_end_in_model_error_or_a_model() -> None:
    # Some mutations are harmless (a zero point inside its range); none may escape otherwise.
    content = model_path().read_bytes()
    refused = 0
    for mutant in representative(content, 80, seed=3):
        try:
            read_model(mutant.content, name="mutant")
        except ModelError as e:
            assert "\n" not in str(e)
            refused += 1
    assert refused > 50


def _tensor(dtype: str, shape: tuple[int, ...], scale: list[float], zero_point: list[int],
            axis: int = 0) -> Tensor:
    q = Quantization(np.array(scale, dtype=np.float32), np.array(zero_point), axis)
    return Tensor(0, "t", shape, dtype, 0, q, False, None)


@pytest.mark.parametrize(("tensor", "match"), [
    (_tensor("int8", (4,), [0.0], [0]), "scale 0 is outside"),
    (_tensor("int8", (4,), [-0.5], [0]), "scale -0.5 is outside"),
    (_tensor("int8", (4,), [1e9], [0]), "scale 1e\\+09 is outside"),
    (_tensor("uint8", (4,), [0.1], [256]), "zero point 256 is outside uint8's range"),
    (_tensor("int16", (4,), [0.1], [-32769]), "zero point -32769"),
    (_tensor("int8", (3, 2), [0.1, 0.2], [0, 0], axis=0), "2 per-channel scales for dimension 0"),
])
def test_quantization_rules_on_plain_tensors(tensor: Tensor, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        check_quantization(tensor, "t")


def test_sane_quantization_passes() -> None:
    check_quantization(_tensor("int8", (3, 2), [0.1, 0.2, 0.3], [0, 1, -1], axis=0), "t")
    check_quantization(_tensor("int32", (8,), [1e-9], [0]), "t")
