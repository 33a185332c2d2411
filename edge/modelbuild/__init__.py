"""Building and quantizing MobileNetV2 models (the ``build`` extra: TensorFlow).

These are the only modules of edge that import TensorFlow, and only inside functions, so
``import edge.modelbuild`` works without it; calling a function that needs it raises
:class:`edge.errors.BackendError` naming ``pip install 'edge-labels[build]'``.
"""

from edge.modelbuild.build import ALPHAS, MIN_RESOLUTION, build_mobilenetv2, import_tensorflow
from edge.modelbuild.quantize import (
    check_quantization,
    load_representative,
    preprocess_frame,
    quantize_keras,
    read_images,
)

__all__ = [
    "ALPHAS",
    "MIN_RESOLUTION",
    "build_mobilenetv2",
    "check_quantization",
    "import_tensorflow",
    "load_representative",
    "preprocess_frame",
    "quantize_keras",
    "read_images",
]
