"""Which models the classifier runs, decided at open from the model's graph. Pure.

Supported: an image classifier, one image input and exactly one output that is one row of
class scores: shape ``[N]``, ``[1, N]`` or ``[1, 1, 1, N]`` (every dimension but one is 1) with
``N >= 2``, produced by a classification layer (not by a pooling or normalization op). Anything
else is refused, naming the kind found and what to use instead:

==============  ===============================================================================
kind            how it is recognised
==============  ===============================================================================
detection       a ``TFLite_Detection_PostProcess`` op (SSD), or an output of shape [1, N, 4]
multi-output    more than one output (edge never picks one silently)
dense           an output with more than one non-1 dimension: feature maps, segmentation,
                pose keypoints ([1, 1, 17, 3])
embedding       one row produced by MEAN, pooling or L2_NORMALIZATION (a backbone without a
                classification layer), seen through reshapes and (de)quantization
single-score    one value: a sigmoid score has no second class to rank against
==============  ===============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.model.types import Model, Subgraph, Tensor

CLASSIFIER = "classifier"
DETECTION_OPS = frozenset({"TFLite_Detection_PostProcess"})
EMBEDDING_OPS = frozenset({"MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_NORMALIZATION",
                           "REDUCE_MAX", "SUM"})
PASS_THROUGH_OPS = frozenset({"RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "CAST"})
USE_INSTEAD = {
    "detection": "run detectors with LiteRT's Interpreter directly (or pycoral.adapters.detect); "
                 "edge-classify and edge-run label whole frames with a classifier",
    "multi-output": "re-export the model with only its class-scores output (e.g. "
                    "tf.keras.Model(inputs, outputs[i]) before converting)",
    "dense": "edge labels whole frames: use an image classifier (one row of scores, one per "
             "class)",
    "embedding": "add a classification layer (Dense + softmax) and re-export, or compare the "
                 "vectors with your own code",
    "single-score": "export the classifier with one score per class (a 2-class softmax)",
}


@dataclass(frozen=True)
class ModelKind:
    """What a model's outputs are.

    Attributes:
        kind: ``classifier`` or one of the refused kinds (see the module doc).
        detail: what gave it away, for messages (e.g. ``output 'x' [1, 1280] from MEAN``).
        classes: number of class scores (classifiers only, else 0).
    """

    kind: str
    detail: str
    classes: int = 0

    @property
    def supported(self) -> bool:
        return self.kind == CLASSIFIER


def describe(tensor: Tensor) -> str:
    return f"{tensor.name!r} {list(tensor.shape)}"


def model_kind(model: Model) -> ModelKind:
    """The kind of ``model`` by its operators and its main subgraph's outputs."""
    graph = model.main
    outputs = [graph.tensors[i] for i in graph.outputs]
    found = sorted(DETECTION_OPS.intersection(model.custom_ops))
    boxes = [t for t in outputs if len(t.shape) == 3 and t.shape[-1] == 4]
    if found or (len(outputs) > 1 and boxes):
        why = found[0] if found else f"boxes output {describe(boxes[0])}"
        return ModelKind("detection", f"{why}; outputs {', '.join(map(describe, outputs))}")
    if len(outputs) != 1:
        return ModelKind("multi-output", f"{len(outputs)} outputs: "
                         f"{', '.join(map(describe, outputs)) or 'none'}")
    return _single_output_kind(graph, outputs[0])


def _single_output_kind(graph: Subgraph, output: Tensor) -> ModelKind:
    wide = [d for d in output.shape if d != 1]
    if len(wide) > 1:
        return ModelKind("dense", f"output {describe(output)} has more than one non-1 "
                         "dimension")
    if output.size < 2:
        return ModelKind("single-score", f"output {describe(output)} is one value")
    head = _producer_through_reshapes(graph, output.index)
    if head in EMBEDDING_OPS:
        return ModelKind("embedding", f"output {describe(output)} comes from {head} with no "
                         "classification layer after it")
    return ModelKind(CLASSIFIER, f"output {describe(output)}", output.size)


def _producer_through_reshapes(graph: Subgraph, tensor: int) -> str | None:
    """The op that computes ``tensor``, looking through reshapes and (de)quantization."""
    producers = {out: op for op in graph.operators for out in op.outputs}
    seen: set[int] = set()
    while tensor in producers and tensor not in seen:
        seen.add(tensor)
        op = producers[tensor]
        if op.opcode not in PASS_THROUGH_OPS or not op.inputs:
            return op.opcode
        tensor = op.inputs[0]
    return None


def refusal(kind: ModelKind, name: str) -> str:
    """The one-line message refusing a model of an unsupported kind."""
    article = "an" if kind.kind[0] in "aeiou" else "a"
    return (f"{name} is {article} {kind.kind} model ({kind.detail}), not an image classifier; "
            f"{USE_INSTEAD[kind.kind]}")
