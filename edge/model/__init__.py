"""Reading .tflite models safely, and what can be learnt from one without running it."""

from edge.model.reader import read_model
from edge.model.types import MicroSupport, Model, Operator, Quantization, Subgraph, Tensor

__all__ = ["MicroSupport", "Model", "Operator", "Quantization", "Subgraph", "Tensor",
           "read_model"]
