"""Frames to input tensors: crop or squash, resize, colour order, quantization. Pure numpy/OpenCV.

The input tensor's shape, type and quantization decide everything (:class:`InputSpec`). A frame
(RGB, BGR, RGBA/BGRA or grayscale, uint8) becomes ``q = (x - mean) / (std * scale) + zero_point``,
rounded half to even and clipped to the tensor type, computed in float32. Two cases skip the
arithmetic because it is a no-op: uint8 models fed raw pixels (*identity*) and int8 models fed
raw pixels shifted by 128 (*int8 shift*); both give bit-for-bit what the formula gives.

Default ``mean``/``std`` when the caller gives none:

* quantized input whose real range spans pixel values (``scale * 255 >= 32``, e.g. a model that
  rescales pixels itself): ``mean 0, std 1``, so ``q = round(x / scale + zero_point)``;
* other quantized inputs (Coral's convention, the real range is about [-1, 1] or [0, 1]): raw
  pixels are the quantized values, i.e. identity for uint8 and ``x - 128`` for int8;
* float input: ``mean 127.5, std 127.5`` (pixels to [-1, 1], as Keras MobileNets expect).

An integer input without quantization parameters (some models take raw uint8 pixels and scale
them inside, e.g. MoveNet) does not say how pixels map to it: it is accepted when the caller
gives ``mean`` and ``std`` (``q = round((x - mean) / std)``, so ``0`` and ``1`` feed raw
pixels), and refused otherwise with a message naming the flags.

Classifiers are resized with ``cv2.INTER_AREA`` (see docs/runtime.md for the measurements behind
the choice); detectors, segmenters and pose models bilinearly, as their own pipelines do
(docs/detect.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edge.decode.geometry import (
    CROP,
    FITS,
    LETTERBOX,
    LETTERBOX_GREY,
    Fit,
    crop_box,
    fit_frame_to_input,
)
from edge.errors import PreprocessError
from edge.model.types import Tensor, dtype_of

RESIZE_MODES = FITS  # squash, crop, letterbox
COLOR_ORDERS = ("rgb", "bgr")
INTERPOLATION = cv2.INTER_AREA
LETTERBOX_INTERPOLATION = cv2.INTER_LINEAR  # Ultralytics' LetterBox
DETECTOR_INTERPOLATION = cv2.INTER_LINEAR  # what detection/segmentation/pose pipelines use
# A quantized input whose real range is at least this wide takes pixel values (0..255) itself.
PIXEL_RANGE_MIN_SPAN = 32.0
FLOAT_MEAN = 127.5
FLOAT_STD = 127.5
# |scale * std - 1| below this changes no rounding of 0..255 inputs (error < 0.003).
NO_OP_TOLERANCE = 1e-5
INT8_SHIFT = 128
_SUPPORTED_TYPES = ("uint8", "int8", "float32")

# (frame channels, colour order, model channels) -> OpenCV conversion, None when none is needed.
_CONVERSIONS: dict[tuple[int, str, int], int | None] = {
    (1, "rgb", 1): None, (1, "bgr", 1): None,
    (1, "rgb", 3): cv2.COLOR_GRAY2RGB, (1, "bgr", 3): cv2.COLOR_GRAY2RGB,
    (3, "rgb", 3): None, (3, "bgr", 3): cv2.COLOR_BGR2RGB,
    (4, "rgb", 3): cv2.COLOR_RGBA2RGB, (4, "bgr", 3): cv2.COLOR_BGRA2RGB,
    (3, "rgb", 1): cv2.COLOR_RGB2GRAY, (3, "bgr", 1): cv2.COLOR_BGR2GRAY,
    (4, "rgb", 1): cv2.COLOR_RGBA2GRAY, (4, "bgr", 1): cv2.COLOR_BGRA2GRAY,
}


@dataclass(frozen=True)
class InputSpec:
    """What a model's image input wants.

    Attributes:
        width: input width in pixels.
        height: input height in pixels.
        channels: 3 (RGB) or 1 (grayscale).
        dtype: ``uint8``, ``int8`` or ``float32``.
        scale: quantization scale; 0.0 for a float input.
        zero_point: quantization zero point; 0 for a float input.
        mean: per-channel (or one shared) value subtracted from pixels.
        std: per-channel (or one shared) divisor of pixels.
    """

    width: int
    height: int
    channels: int
    dtype: str
    scale: float
    zero_point: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The input tensor's shape, batch of one."""
        return (1, self.height, self.width, self.channels)

    @property
    def conversion(self) -> str:
        """``identity``, ``int8-shift``, ``affine`` (quantized formula) or ``float``."""
        if self.dtype == "float32":
            return "float"
        if len(set(self.mean)) == 1 and len(set(self.std)) == 1:
            offset = self.mean[0] - self.zero_point
            if abs(self.scale * self.std[0] - 1.0) < NO_OP_TOLERANCE:
                if self.dtype == "uint8" and offset == 0:
                    return "identity"
                if self.dtype == "int8" and offset == INT8_SHIFT:
                    return "int8-shift"
        return "affine"


def input_spec(tensor: Tensor, mean: Sequence[float] | float | None = None,
               std: Sequence[float] | float | None = None, where: str = "the model"
               ) -> InputSpec:
    """The :class:`InputSpec` of an image input tensor of shape (1, H, W, C) or (H, W, C).

    Args:
        tensor: the model's input.
        mean: pixel mean(s), or None for the default of the input type.
        std: pixel standard deviation(s), likewise.
        where: the model's name, for messages.

    Raises:
        PreprocessError: the tensor is not an image input this runtime can fill, or
            ``mean``/``std`` do not fit it (or are missing where the model needs them).
    """
    shape = tensor.shape[1:] if len(tensor.shape) == 4 and tensor.shape[0] == 1 else tensor.shape
    if len(shape) != 3 or shape[2] not in (1, 3) or min(shape) < 1:
        raise PreprocessError(f"{where}: input {tensor.name!r} has shape {list(tensor.shape)}; "
                              "an image classifier needs [1, height, width, 3] or "
                              "[1, height, width, 1]")
    if tensor.dtype not in _SUPPORTED_TYPES:
        raise PreprocessError(f"{where}: input {tensor.name!r} is {tensor.dtype}; supported "
                              f"input types are {', '.join(_SUPPORTED_TYPES)}")
    height, width, channels = shape
    scale, zero_point = _input_quantization(tensor, mean is not None and std is not None, where)
    default_mean, default_std = default_normalization(tensor.dtype, scale, zero_point)
    return InputSpec(width=width, height=height, channels=channels, dtype=tensor.dtype,
                     scale=scale, zero_point=zero_point,
                     mean=_per_channel("mean", mean, default_mean, channels),
                     std=_per_channel("std", std, default_std, channels))


def _input_quantization(tensor: Tensor, normalization_given: bool, where: str
                        ) -> tuple[float, int]:
    """``(scale, zero_point)``: the tensor's, or ``(1, 0)`` for an unquantized integer input
    the caller gave ``mean``/``std`` for."""
    if tensor.dtype == "float32":
        return 0.0, 0
    quant = tensor.quantization
    scale = float(quant.scale[0]) if quant is not None else 0.0
    if scale > 0 and quant is not None:
        return scale, int(quant.zero_point[0])
    if normalization_given:
        return 1.0, 0
    raise PreprocessError(f"{where}: input {tensor.name!r} is {tensor.dtype} without "
                          "quantization parameters, so the model does not say how pixels map to "
                          "it; pass --mean and --std (--mean 0 --std 1 feeds raw pixels 0..255)")


def default_normalization(dtype: str, scale: float, zero_point: int) -> tuple[float, float]:
    """``(mean, std)`` for pixels 0..255 when the caller gives none (see the module doc)."""
    if dtype == "float32":
        return FLOAT_MEAN, FLOAT_STD
    if scale * 255.0 >= PIXEL_RANGE_MIN_SPAN:
        return 0.0, 1.0
    shift = INT8_SHIFT if dtype == "int8" else 0
    return float(zero_point + shift), 1.0 / scale


def _per_channel(name: str, value: Sequence[float] | float | None, default: float,
                 channels: int) -> tuple[float, ...]:
    if value is None:
        return (default,)
    values = (float(value),) if isinstance(value, int | float) else tuple(float(v) for v in value)
    if len(values) not in (1, channels):
        raise PreprocessError(f"{name} has {len(values)} values; give 1 or {channels} "
                              "(one per input channel)")
    if name == "std" and not all(np.isfinite(v) and v != 0 for v in values):
        raise PreprocessError(f"std (={list(values)}) must be finite and non-zero")
    return values


def crop_to_aspect(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """The largest centred region of ``frame`` with the aspect ratio width:height (a view)."""
    left, top, cols, rows = crop_box((frame.shape[1], frame.shape[0]), (width, height))
    return frame[top:top + rows, left:left + cols]


def fit_frame(frame: np.ndarray, size: tuple[int, int], resize: str = "squash") -> np.ndarray:
    """An RGB uint8 frame as the model sees it before quantization, at ``size`` = (w, h).

    The same crop and interpolation as :class:`Preprocessor`; used where frames are stored
    (training data, recordings) rather than fed to an interpreter.
    """
    if resize not in RESIZE_MODES:
        raise PreprocessError(f"resize (={resize!r}) must be one of {', '.join(RESIZE_MODES)}")
    if resize == LETTERBOX:
        out = np.full((size[1], size[0], *frame.shape[2:]), LETTERBOX_GREY, np.uint8)
        left, top, width, height = fit_frame_to_input((frame.shape[1], frame.shape[0]), size,
                                                      LETTERBOX).content
        out[top:top + height, left:left + width] = cv2.resize(
            frame, (width, height), interpolation=LETTERBOX_INTERPOLATION)
        return out
    src = crop_to_aspect(frame, size[0], size[1]) if resize == "crop" else frame
    return cv2.resize(src, size, interpolation=INTERPOLATION)


def quantize(pixels: np.ndarray, spec: InputSpec, out: np.ndarray,
             scratch: np.ndarray | None = None) -> np.ndarray:
    """Write ``(pixels - mean) / (std * scale) + zero_point`` into ``out`` (float32 maths).

    Args:
        pixels: uint8 (H, W, C).
        spec: the input; float inputs get ``(pixels - mean) / std``.
        out: (H, W, C) of the input tensor's type.
        scratch: optional float32 (H, W, C) work buffer, to avoid allocating one.
    """
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    x = np.empty(pixels.shape, np.float32) if scratch is None else scratch
    np.copyto(x, pixels, casting="safe")
    if spec.dtype == "float32":
        np.divide(np.subtract(x, mean, out=x), std, out=out)
        return out
    divisor = std * np.float32(spec.scale)
    np.add(np.divide(np.subtract(x, mean, out=x), divisor, out=x), np.float32(spec.zero_point),
           out=x)
    info = np.iinfo(dtype_of(spec.dtype))
    np.clip(np.round(x, out=x), info.min, info.max, out=x)
    np.copyto(out, x, casting="unsafe")
    return out


class Preprocessor:
    """Turns frames into the input tensor, reusing its buffers from call to call.

    Args:
        spec: the model's input.
        resize: ``squash`` (whole frame, aspect ratio not kept, as Coral's examples do) or
            ``crop`` (centre crop to the input's aspect ratio first) or ``letterbox`` (the whole
            frame, aspect ratio kept, grey borders: Ultralytics' preprocessing).
        interpolation: OpenCV interpolation flag (``letterbox`` uses bilinear, as Ultralytics).
    """

    def __init__(self, spec: InputSpec, resize: str = "squash",
                 interpolation: int = INTERPOLATION) -> None:
        if resize not in RESIZE_MODES:
            raise PreprocessError(f"resize (={resize!r}) must be one of {', '.join(RESIZE_MODES)}")
        self.spec = spec
        self.resize = resize
        self.interpolation = LETTERBOX_INTERPOLATION if resize == LETTERBOX else interpolation
        self.conversion = spec.conversion
        size = (spec.height, spec.width, spec.channels)
        self._pixels = np.empty(size, np.uint8)
        self._resized: dict[int, np.ndarray] = {}
        self._input: np.ndarray
        if self.conversion == "identity":
            self._input = self._pixels.reshape(spec.shape)
        elif self.conversion == "int8-shift":
            self._input = self._pixels.view(np.int8).reshape(spec.shape)
        else:
            self._input = np.empty(spec.shape, dtype_of(spec.dtype))
            self._scratch = np.empty(size, np.float32)

    def __call__(self, frame: np.ndarray, color: str = "rgb") -> np.ndarray:
        """The input tensor for ``frame``: shape (1, H, W, C), the model's type.

        The array returned is reused: it holds this frame's input until the next call.

        Raises:
            PreprocessError: the frame is not a uint8 image or ``color`` is unknown.
        """
        src = _image_view(frame)
        if self.resize == CROP:
            src = crop_to_aspect(src, self.spec.width, self.spec.height)
        if self.resize == LETTERBOX:
            self._letterbox(src, color)
        else:
            self._resize_and_convert(src, color, self._pixels)
        if self.conversion == "int8-shift":
            np.bitwise_xor(self._pixels, 0x80, out=self._pixels)  # x - 128 as int8
        elif self.conversion != "identity":
            quantize(self._pixels, self.spec, self._input[0], self._scratch)
        return self._input

    def fit(self, frame_size: tuple[int, int]) -> Fit:
        """Where a ``(width, height)`` frame lands in the input (to map results back)."""
        return fit_frame_to_input(frame_size, (self.spec.width, self.spec.height), self.resize)

    def _letterbox(self, src: np.ndarray, color: str) -> None:
        left, top, width, height = self.fit((src.shape[1], src.shape[0])).content
        self._pixels.fill(LETTERBOX_GREY)
        self._resize_and_convert(src, color, self._pixels[top:top + height, left:left + width])

    def _resize_and_convert(self, src: np.ndarray, color: str, target: np.ndarray) -> None:
        key = (1 if src.ndim == 2 else src.shape[2], color, self.spec.channels)
        if key not in _CONVERSIONS:
            raise PreprocessError(f"color (={color!r}) must be one of {', '.join(COLOR_ORDERS)}")
        code = _CONVERSIONS[key]
        size = (target.shape[1], target.shape[0])
        pixels = target[:, :, 0] if self.spec.channels == 1 else target
        direct = pixels if pixels.flags.c_contiguous else None  # a letterbox's inner region
        if code is None:
            _into(cv2.resize(src, size, dst=direct, interpolation=self.interpolation), pixels)
            return
        resized = self._resized_buffer(key[0], size)
        _into(cv2.resize(src, size, dst=resized, interpolation=self.interpolation), resized)
        _into(cv2.cvtColor(resized, code, dst=direct), pixels)

    def _resized_buffer(self, channels: int, size: tuple[int, int]) -> np.ndarray:
        shape = (size[1], size[0]) + ((channels,) if channels > 1 else ())
        buffer = self._resized.get(channels)
        if buffer is None or buffer.shape != shape:
            buffer = self._resized[channels] = np.empty(shape, np.uint8)
        return buffer


def _image_view(frame: np.ndarray) -> np.ndarray:
    """``frame`` as (H, W) or (H, W, 3|4) uint8, checked."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        kind = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
        raise PreprocessError(f"frame must be a uint8 numpy image, got {kind}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise PreprocessError(f"frame has shape {list(frame.shape)}; expected (height, width) "
                              "grayscale or (height, width, 3|4) colour")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise PreprocessError(f"frame has shape {list(frame.shape)}; it is empty")
    return frame


def _into(result: np.ndarray, dst: np.ndarray) -> None:
    """OpenCV silently allocates when ``dst`` does not fit; keep the buffer either way."""
    if result is not dst and not np.shares_memory(result, dst):
        np.copyto(dst, result.reshape(dst.shape))


def raw_input_tensor(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """An image whose bytes already are the model's input values, as the input tensor.

    For test images that store quantized values (TFLM's ``person.bmp`` holds int8 pixels as
    raw bytes): no resize, no normalization; each byte is reinterpreted as the input's integer
    type (byte 200 is int8 -56).

    Raises:
        PreprocessError: the input is float, or the image is not exactly the input's size.
    """
    image = _image_view(pixels)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if spec.dtype == "float32":
        raise PreprocessError("--raw-input needs an integer (quantized) model input; this one "
                              "is float32")
    if image.shape != (spec.height, spec.width, spec.channels):
        raise PreprocessError(f"--raw-input needs an image of exactly {spec.width}x{spec.height}"
                              f"x{spec.channels} (the model's input), got {image.shape[1]}x"
                              f"{image.shape[0]}x{image.shape[2]}")
    return np.ascontiguousarray(image).view(dtype_of(spec.dtype)).reshape(spec.shape)
