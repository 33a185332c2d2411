"""Frames to input tensors, on plain arrays: resize, colour order, quantization fast paths."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import PreprocessError
from edge.model.types import Quantization, Tensor
from edge.runtime.preprocess import (
    INTERPOLATION,
    InputSpec,
    Preprocessor,
    crop_to_aspect,
    default_normalization,
    input_spec,
    quantize,
    raw_input_tensor,
)


def tensor(shape=(1, 4, 6, 3), dtype="uint8", scale=1 / 128, zero_point=128) -> Tensor:
    quant = None
    if scale:
        quant = Quantization(np.array([scale], np.float32), np.array([zero_point], np.int64))
    return Tensor(0, "input", shape, dtype, 0, quant, False, None)


def spec(dtype="uint8", scale=1 / 128, zero_point=128, width=6, height=4, channels=3,
         mean=None, std=None) -> InputSpec:
    return input_spec(tensor((1, height, width, channels), dtype, scale, zero_point), mean, std)


def frame(height=37, width=53, channels=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (height, width, channels) if channels > 1 else (height, width)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def all_pixel_values() -> np.ndarray:
    """A 16x16x3 frame that holds every value 0..255 in each channel."""
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return np.stack([values, values[::-1], values.T], axis=-1)


def demo_formula(pixels: np.ndarray, scale: float | np.float32, zero_point: int) -> np.ndarray:
    """How the demo model's trainer quantizes its resized RGB frames (edge.modelbuild)."""
    q = np.clip(np.round(pixels.astype(np.float32) / scale + zero_point), -128, 127)
    return q.astype(np.int8)


def test_uint8_raw_pixels_are_the_identity_and_equal_a_plain_resize():
    s = spec()
    assert s.conversion == "identity" and s.mean == (128.0,) and s.std == (128.0,)
    f = frame()
    out = Preprocessor(s)(f)
    assert out.shape == (1, 4, 6, 3) and out.dtype == np.uint8
    expected = cv2.resize(f, (6, 4), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out[0], expected)


def test_buffer_is_reused_between_frames():
    pre = Preprocessor(spec())
    first = pre(frame(seed=1))
    second = pre(frame(seed=2))
    assert first is second


@pytest.mark.parametrize(("scale", "zero_point"), [(1.0, -128), (0.98, -128), (1.0, -127),
                                                   (255 / 254, -128)])
def test_demo_model_path_is_numerically_identical(scale, zero_point):
    """Squash with INTER_AREA, q = round(x / scale + zero_point) on raw 0..255 RGB pixels."""
    s = spec("int8", scale, zero_point, width=224, height=224)
    assert s.mean == (0.0,) and s.std == (1.0,)
    f = frame(480, 640, seed=3)
    f[:16, :16] = all_pixel_values()
    out = Preprocessor(s)(f)
    resized = cv2.resize(f, (224, 224), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out[0], demo_formula(resized, np.float32(scale), zero_point))


def test_int8_unit_scale_takes_the_shift_fast_path():
    s = spec("int8", 1.0, -128)
    assert s.conversion == "int8-shift"
    f = frame()
    out = Preprocessor(s)(f)
    assert out.dtype == np.int8
    expected = cv2.resize(f, (6, 4), interpolation=cv2.INTER_AREA).astype(np.int16) - 128
    np.testing.assert_array_equal(out[0], expected)


def test_int8_normalized_model_is_fed_shifted_raw_pixels():
    s = spec("int8", 1 / 128, 0)
    assert s.conversion == "int8-shift" and s.mean == (128.0,)


@settings(max_examples=200, deadline=None)
@given(dtype=st.sampled_from(["uint8", "int8"]),
       scale=st.floats(1e-3, 4.0, allow_nan=False, allow_subnormal=False),
       zero_point=st.integers(-128, 255),
       mean=st.none() | st.floats(-300, 300), std=st.none() | st.floats(0.01, 300))
def test_every_path_equals_the_literal_formula(dtype, scale, zero_point, mean, std):
    info = np.iinfo(dtype)
    zero_point = int(np.clip(zero_point, info.min, info.max))
    s = spec(dtype, float(np.float32(scale)), zero_point, width=16, height=16, mean=mean, std=std)
    pixels = all_pixel_values()
    out = Preprocessor(s)(pixels)
    x = pixels.astype(np.float64)
    literal = (x - s.mean[0]) / (s.std[0] * s.scale) + s.zero_point
    expected = np.clip(np.round(literal), info.min, info.max)
    # float32 maths may round a value lying within float32 precision of .5 either way
    assert np.abs(out[0].astype(np.float64) - expected).max() <= 1
    reference = quantize(pixels, s, np.empty(pixels.shape, out.dtype))
    if s.conversion in ("identity", "int8-shift"):
        np.testing.assert_array_equal(out[0], reference)


def test_bgr_and_rgb_frames_give_the_same_tensor():
    f = frame()
    s = spec("int8", 0.9, -3)
    rgb = Preprocessor(s)(f).copy()
    bgr = Preprocessor(s)(np.ascontiguousarray(f[:, :, ::-1]), color="bgr")
    np.testing.assert_array_equal(rgb, bgr)


def test_rgba_frames_drop_alpha():
    f = frame(channels=4)
    out = Preprocessor(spec())(f, color="rgb").copy()
    np.testing.assert_array_equal(out, Preprocessor(spec())(np.ascontiguousarray(f[:, :, :3])))


def test_grayscale_frame_to_colour_model_and_colour_frame_to_grayscale_model():
    gray = frame(channels=1)
    out = Preprocessor(spec())(gray)
    resized = cv2.resize(gray, (6, 4), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out[0], np.repeat(resized[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(Preprocessor(spec())(gray[:, :, None]), out)
    f = frame()
    out1 = Preprocessor(spec(channels=1))(f)
    assert out1.shape == (1, 4, 6, 1)
    expected = cv2.cvtColor(cv2.resize(f, (6, 4), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(out1[0, :, :, 0], expected)


def test_crop_keeps_the_centre_at_the_input_aspect_ratio():
    f = frame(480, 640)
    view = crop_to_aspect(f, 224, 224)
    assert view.shape[:2] == (480, 480) and np.shares_memory(view, f)
    np.testing.assert_array_equal(view, f[:, 80:560])
    assert crop_to_aspect(f[:, :100], 2, 1).shape[:2] == (50, 100)
    assert crop_to_aspect(f, 640, 480).shape[:2] == (480, 640)
    out = Preprocessor(spec(width=4, height=4), resize="crop")(f)
    expected = cv2.resize(f[:, 80:560], (4, 4), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out[0], expected)


def test_float_model_defaults_to_minus_one_to_one_and_takes_per_channel_mean_std():
    s = spec("float32", 0, 0)
    assert s.conversion == "float" and default_normalization("float32", 0, 0) == (127.5, 127.5)
    f = frame()
    out = Preprocessor(s)(f)
    resized = cv2.resize(f, (6, 4), interpolation=cv2.INTER_AREA).astype(np.float32)
    np.testing.assert_allclose(out[0], (resized - 127.5) / 127.5, rtol=1e-6)
    mean, std = (123.7, 116.3, 103.5), (58.4, 57.1, 57.4)
    out = Preprocessor(spec("float32", 0, 0, mean=mean, std=std))(f)
    expected = (resized - np.array(mean, np.float32)) / np.array(std, np.float32)
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)


def test_explicit_mean_std_on_uint8_clips_to_the_type():
    s = spec("uint8", 1 / 255, 0, mean=0, std=0.5)
    assert s.conversion == "affine"
    out = Preprocessor(s)(np.full((4, 6, 3), 200, np.uint8))
    assert (out == 255).all()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"shape": (1, 4, 6, 2)}, "needs \\[1, height, width, 3\\]"),
    ({"shape": (4,)}, "image classifier"),
    ({"dtype": "int16"}, "supported input types"),
    ({"dtype": "uint8", "scale": 0}, "m.tflite: input 'input' is uint8 without quantization "
                                      "parameters.*pass --mean and --std"),
    ({"dtype": "int8", "scale": 0}, "int8 without quantization parameters"),
])
def test_unusable_input_tensors_are_refused(kwargs, match):
    with pytest.raises(PreprocessError, match=match):
        input_spec(tensor(**kwargs), where="m.tflite")


def test_unquantized_uint8_input_takes_pixels_through_the_given_mean_and_std():
    raw = input_spec(tensor(dtype="uint8", scale=0), mean=0, std=1)
    assert (raw.scale, raw.zero_point, raw.conversion) == (1.0, 0, "identity")
    pixels = frame()
    out = Preprocessor(raw, "squash")(pixels)
    expected = cv2.resize(pixels, (6, 4), interpolation=INTERPOLATION)
    assert np.array_equal(out[0], expected)
    halved = Preprocessor(input_spec(tensor(dtype="uint8", scale=0), mean=0, std=2))(pixels)
    assert np.array_equal(halved[0], np.round(expected.astype(np.float32) / 2).astype(np.uint8))


def test_raw_input_reinterprets_the_bytes_as_the_input_type():
    s = spec(dtype="int8", scale=1 / 127.5, zero_point=-1, channels=1)
    pixels = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    out = raw_input_tensor(pixels, s)
    assert out.dtype == np.int8 and out.shape == (1, 4, 6, 1)
    assert out[0, 3, 5, 0] == np.int8(230 - 256)
    with pytest.raises(PreprocessError, match="exactly 6x4x1"):
        raw_input_tensor(np.zeros((5, 6), np.uint8), s)
    with pytest.raises(PreprocessError, match="float32"):
        raw_input_tensor(pixels, spec(dtype="float32", channels=1))


def test_bad_mean_std_frames_colour_and_resize_are_refused():
    with pytest.raises(PreprocessError, match="std"):
        spec(std=0)
    with pytest.raises(PreprocessError, match="give 1 or 3"):
        spec(mean=(1, 2))
    with pytest.raises(PreprocessError, match="resize"):
        Preprocessor(spec(), resize="stretch")
    pre = Preprocessor(spec())
    with pytest.raises(PreprocessError, match="uint8"):
        pre(frame().astype(np.float32))
    with pytest.raises(PreprocessError, match="shape"):
        pre(np.zeros((4, 6, 2), np.uint8))
    with pytest.raises(PreprocessError, match="empty"):
        pre(np.zeros((0, 6, 3), np.uint8))
    with pytest.raises(PreprocessError, match="color"):
        pre(frame(), color="yuv")
    with pytest.raises(ValueError):  # our errors are ValueErrors too
        pre("not a frame")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(512, 600), (1000, 3), (3, 5), (640, 640), (800, 450)])
def test_letterbox_is_ultralytics_letterbox(size):
    """Ultralytics' LetterBox written from its documentation: scale min(W/w, H/h), bilinear
    resize to round(w*r) x round(h*r), borders of round(d -/+ 0.1) grey 114."""
    rng = np.random.default_rng(size[0])
    frame = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    spec = InputSpec(64, 48, 3, "uint8", 1.0, 0, (0.0,), (1.0,))
    tensor = Preprocessor(spec, "letterbox")(frame, color="rgb")[0]
    r = min(64 / size[0], 48 / size[1])
    nw, nh = max(1, round(size[0] * r)), max(1, round(size[1] * r))  # (ours: at least 1)
    dw, dh = (64 - nw) / 2, (48 - nh) / 2
    resized = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    expected = cv2.copyMakeBorder(resized, round(dh - 0.1), round(dh + 0.1),
                                  round(dw - 0.1), round(dw + 0.1),
                                  cv2.BORDER_CONSTANT, value=(114, 114, 114))
    assert np.array_equal(tensor, expected)
    grey = Preprocessor(spec, "letterbox")(frame[:, :, 0], color="rgb")[0]  # grayscale frame
    assert np.array_equal(grey[:, :, 0], grey[:, :, 2])
