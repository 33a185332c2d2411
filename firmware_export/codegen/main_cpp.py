"""``src/main.cpp``: set up TFLM, run the model on camera frames, stream labels over serial
(a classifier's top label, or a centroid detector's objects: :mod:`.detector`)."""

from __future__ import annotations

from firmware_export.codegen.detector import CentroidValues, classifier_code, detector_code
from firmware_export.codegen.render import Code, render

PIXEL_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "float32": "float", "int16": "int16_t"}
# Test-pattern value for pixel p (0..255) in each input type.
PATTERN = {"int8": "static_cast<int8_t>(p - 128)", "uint8": "static_cast<uint8_t>(p)",
           "float32": "p / 127.5f - 1.0f", "int16": "static_cast<int16_t>((p - 128) * 256)"}


def input_geometry(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(height, width, channels) of an NHWC input; other shapes as one row of values."""
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    elements = 1
    for n in shape[1:] or shape:
        elements *= n
    return 1, elements, 1


def main_cpp(array_name: str, board: str, model_file: str, input_shape: tuple[int, ...],
             input_dtype: str, detector: CentroidValues | None = None) -> str:
    """The sketch for a model array called ``array_name`` with this graph input; with
    ``detector``, it decodes the output grid into centroids instead of taking the top label."""
    height, width, channels = input_geometry(input_shape)
    kind = classifier_code() if detector is None else detector_code(detector)
    return render("main.cpp.in", board=board, model_file=model_file, array_name=array_name,
                  pixel_type=Code(PIXEL_TYPES.get(input_dtype, "int8_t")),
                  pattern=Code(PATTERN.get(input_dtype, PATTERN["int8"])),
                  height=height, width=width, channels=channels, **kind)
