"""Which kind a model is, and which output layout its decoder reads, decided at open. Pure.

Kinds: ``classify``, ``detect``, ``segment``, ``pose`` (:data:`edge.events.KINDS`). The model
says which, in this order:

==================  ===============================================================================
layout              how it is recognised
==================  ===============================================================================
centroids           an edge-model centroid detector: its embedded training record says task
                    ``detect`` and its one output is a cell grid ``[1, H, W, 1+C]`` (channel 0
                    the background); the record's threshold is the decoder's default
ssd_postprocess     a ``TFLite_Detection_PostProcess`` op (SSD, EfficientDet-Lite, Model Maker,
                    Coral; also after ``edgetpu-custom-op``); its four outputs are told apart by
                    where they come from in the op, whatever order the model lists them in
yolo                one output ``[1, 4+C, N]`` (Ultralytics v8 and later) or ``[1, N, 5+C]`` (v5,
                    objectness), N >= :data:`MIN_CANDIDATES`; Ultralytics' own metadata (the
                    ``task`` and ``names`` it packs into the file) is read where present
anchors             two outputs ``[1, A, 4+2K]`` and ``[1, A, 1]`` whose A matches MediaPipe's
                    SSD anchors for the input size (BlazeFace: 896 at 128x128)
pose                one output ``[1, 1, 17, 3]`` (MoveNet single pose)
segment             one output of integer class indices ``[1, H, W]`` (ARG_MAX inside, DeepLab),
                    or per-class scores ``[1, H, W, C]`` at the input's size (any size when
                    TFLite metadata calls the output a segmentation mask, as TF Hub's do)
classes             one row of class scores ``[N]``, ``[1, N]``, ``[1, 1, 1, N]`` (N >= 2) made by
                    a classification layer
==================  ===============================================================================

``--kind`` overrides the guess: it picks the first layout of that kind the outputs fit, also
where the guess is careful (per-class scores of any grid size for ``segment``; one value or an
embedding for ``classify``). Anything else is refused in one line naming the outputs and
``--kind`` (:func:`refusal`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from edge.decode.anchors import anchor_spec
from edge.decode.pose import is_single_pose
from edge.decode.segment import segment_layout
from edge.decode.ssd_postprocess import ROLES
from edge.decode.yolo import yolo_spec
from edge.events import CLASSIFY, DETECT, KINDS, POSE, SEGMENT
from edge.model.labels import ZIP_END_MAGIC, embedded_file, embedded_record
from edge.model.tflite_metadata import ModelNotes, read_notes
from edge.model.types import Model, Subgraph, Tensor

CLASSIFIER = CLASSIFY  # the name older callers use
POSTPROCESS_OP = "TFLite_Detection_PostProcess"
DETECTION_OPS = frozenset({POSTPROCESS_OP})
EMBEDDING_OPS = frozenset({"MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_NORMALIZATION",
                           "REDUCE_MAX", "SUM"})
PASS_THROUGH_OPS = frozenset({"RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "CAST"})
MIN_CANDIDATES = 64
ULTRALYTICS_MEMBERS = ("metadata.json", "temp_meta.txt", "metadata.yaml")
ULTRALYTICS_TASKS = {"detect": DETECT, "classify": CLASSIFY, "segment": "yolo-segment",
                     "pose": "yolo-pose", "obb": "yolo-obb"}
KIND_FLAG = f"--kind {'|'.join(KINDS)}"
USE_INSTEAD = {
    "multi-output": f"if it is one of those kinds, say which with {KIND_FLAG}; otherwise "
                    "re-export the model with only its class-scores output (docs/detect.md "
                    "lists the layouts edge reads)",
    "dense": f"if it is one of those kinds, say which with {KIND_FLAG} (docs/detect.md lists "
             "the layouts edge reads)",
    "embedding": "add a classification layer (Dense + softmax) and re-export, compare the "
                 "vectors with your own code, or force it with --kind classify",
    "single-score": "export the classifier with one score per class (a 2-class softmax), or "
                    "force it with --kind classify",
    "yolo-task": "export an Ultralytics detection model (task detect) with nms=False (and "
                 "end2end=False for YOLO26): edge reads the raw head and does the NMS itself; "
                 "segmentation, pose and oriented-box heads are not read (docs/detect.md)",
}


@dataclass(frozen=True)
class ModelKind:
    """What a model's outputs are and how to read them.

    Attributes:
        kind: one of :data:`edge.events.KINDS`, or a refused kind (``multi-output``, ``dense``,
            ``embedding``, ``single-score``, ``yolo-task``).
        detail: what gave it away, for messages (e.g. ``output 'x' [1, 1280] from MEAN``).
        classes: number of class scores (classifiers and YOLO heads), else 0.
        layout: the decoder that reads the outputs (``classes``, ``ssd_postprocess``,
            ``yolo``, ``anchors``, ``segment``, ``pose``), or ``""``.
        outputs: tensor indices of the outputs the decoder reads, in the layout's role order
            (SSD: boxes, classes, scores, count; anchors: boxes, scores).
        names: class names the model itself carries in its metadata (Ultralytics), or ().
    """

    kind: str
    detail: str
    classes: int = 0
    layout: str = ""
    outputs: tuple[int, ...] = ()
    names: tuple[str, ...] = field(default=(), repr=False)
    threshold: float | None = None  # the decoder's default threshold from the model's record

    @property
    def supported(self) -> bool:
        return self.kind in KINDS


def describe(tensor: Tensor) -> str:
    return f"{tensor.name!r} {list(tensor.shape)}"


def model_kind(model: Model, asked: str | None = None) -> ModelKind:
    """The kind of ``model`` by its operators, outputs and metadata; ``asked`` (``--kind``)
    overrides the guess where the outputs fit a layout of that kind."""
    graph = model.main
    outputs = [graph.tensors[i] for i in graph.outputs]
    meta = ultralytics_metadata(model.content)
    names = _names(meta)
    notes = read_notes(model.metadata)
    found = _layouts(model, graph, outputs, names, loose=asked is not None,
                     masks=_says_masks(notes))
    if asked is not None:
        for kind in found:
            if kind.kind == asked:
                return kind
        return _refused(graph, outputs, meta)
    task = ULTRALYTICS_TASKS.get(str(meta.get("task", "")), DETECT) if meta else None
    if task is not None and task not in KINDS:
        return ModelKind("yolo-task", f"Ultralytics task {meta['task']!r}; outputs "
                         f"{_list(outputs)}")
    if meta.get("end2end") or meta.get("nms"):  # [1, 300, 6] boxes after NMS, not a head
        return ModelKind("yolo-task", f"exported with NMS inside (end2end); outputs "
                         f"{_list(outputs)}")
    return found[0] if found else _refused(graph, outputs, meta)


def _layouts(model: Model, graph: Subgraph, outputs: list[Tensor], names: tuple[str, ...],
             *, loose: bool, masks: bool) -> list[ModelKind]:
    """Every layout the outputs fit, most specific first."""
    found: list[ModelKind] = []
    centroids = _centroid_layout(model, outputs)
    if centroids is not None:
        found.append(centroids)
    ssd = _postprocess_outputs(model, graph)
    if ssd is not None:
        found.append(ModelKind(DETECT, f"{POSTPROCESS_OP}; outputs {_list(outputs)}", 0,
                               "ssd_postprocess", ssd))
    if len(outputs) == 2:
        size = _input_size(model)
        for boxes, scores in (outputs, outputs[::-1]):
            if size and anchor_spec(boxes.shape, scores.shape, size) is not None:
                found.append(ModelKind(DETECT, f"anchor head {describe(boxes)}, "
                                       f"{describe(scores)}", 1, "anchors",
                                       (boxes.index, scores.index)))
                break
    if len(outputs) == 1:
        found.extend(_single_output_layouts(model, graph, outputs[0], names, loose=loose,
                                            masks=masks))
    return found


def _single_output_layouts(model: Model, graph: Subgraph, output: Tensor,
                           names: tuple[str, ...], *, loose: bool, masks: bool
                           ) -> list[ModelKind]:
    found = []
    shape, where = output.shape, (output.index,)
    yolo = yolo_spec(shape, len(names) or None)
    if yolo is not None and max(shape) >= MIN_CANDIDATES:
        found.append(ModelKind(DETECT, f"YOLO {yolo.version} head {describe(output)}",
                               yolo.classes, "yolo", where, names))
    if is_single_pose(shape):
        found.append(ModelKind(POSE, f"single pose {describe(output)}", 0, "pose", where))
    seg = segment_layout(shape, output.dtype)
    size = _input_size(model)
    at_input_size = size is not None and tuple(shape[1:3]) == (size[1], size[0])
    if seg is not None and (seg == "index" or at_input_size or loose or masks):
        found.append(ModelKind(SEGMENT, f"{seg} map {describe(output)}", 0, "segment", where))
    wide = [d for d in shape if d != 1]
    if len(wide) <= 1:
        head = _producer_through_reshapes(graph, output.index)
        if output.size < 2 and not loose:
            found.append(ModelKind("single-score", f"output {describe(output)} is one value"))
        elif head in EMBEDDING_OPS and not loose:
            found.append(ModelKind("embedding", f"output {describe(output)} comes from {head} "
                                   "with no classification layer after it"))
        else:
            found.append(ModelKind(CLASSIFY, f"output {describe(output)}", output.size,
                                   "classes", where))
    return found


def _centroid_layout(model: Model, outputs: list[Tensor]) -> ModelKind | None:
    """A centroid detector (``edge-model train --task detect``): its embedded training record
    says task ``detect`` and its one output is a cell grid ``[1, H, W, 1 + classes]``."""
    if len(outputs) != 1 or len(outputs[0].shape) != 4 or outputs[0].shape[3] < 2:
        return None
    record = embedded_record(model.content) or {}
    if record.get("task") != DETECT:
        return None
    output = outputs[0]
    classes = int(output.shape[3]) - 1
    recorded = record.get("classes")
    if isinstance(recorded, list) and len(recorded) != classes:
        return None
    threshold = record.get("threshold")
    cut = float(threshold) if isinstance(threshold, (int, float)) and 0 < threshold < 1 else None
    return ModelKind(DETECT, f"centroid grid {describe(output)} (edge-model detector: "
                     f"background + {classes} classes)", classes, "centroids",
                     (output.index,), threshold=cut)


def _says_masks(notes: ModelNotes | None) -> bool:
    """Whether TFLite metadata calls the (single) output a segmentation mask."""
    if notes is None or len(notes.outputs) != 1:
        return False
    text = f"{notes.outputs[0].name} {notes.outputs[0].description}".lower()
    return "segment" in text or "mask" in text


def _refused(graph: Subgraph, outputs: list[Tensor], meta: dict[str, Any]) -> ModelKind:
    if len(outputs) != 1:
        return ModelKind("multi-output", f"{len(outputs)} outputs: {_list(outputs) or 'none'}")
    output = outputs[0]
    wide = [d for d in output.shape if d != 1]
    if len(wide) > 1:
        return ModelKind("dense", f"output {describe(output)} has more than one non-1 "
                         "dimension and fits no layout edge reads")
    head = _producer_through_reshapes(graph, output.index)
    if output.size < 2:
        return ModelKind("single-score", f"output {describe(output)} is one value")
    return ModelKind("embedding", f"output {describe(output)} comes from {head} with no "
                     "classification layer after it")


def _postprocess_outputs(model: Model, graph: Subgraph) -> tuple[int, ...] | None:
    """The model outputs that are the post-processing op's boxes, classes, scores and count,
    in that order, found through the graph; None without the op."""
    ops = [op for op in graph.operators if op.opcode == POSTPROCESS_OP]
    if not ops or len(ops[0].outputs) != len(ROLES):
        return None
    op_outputs = ops[0].outputs
    by_source = {_source_through_reshapes(graph, index): index for index in graph.outputs}
    if not all(t in by_source for t in op_outputs):
        return None
    return tuple(by_source[t] for t in op_outputs)


def _producers(graph: Subgraph) -> dict[int, Any]:
    return {out: op for op in graph.operators for out in op.outputs}


def _source_through_reshapes(graph: Subgraph, tensor: int) -> int:
    """The tensor ``tensor`` is a reshape or (de)quantization of (itself when none)."""
    producers = _producers(graph)
    seen: set[int] = set()
    while tensor in producers and tensor not in seen:
        seen.add(tensor)
        op = producers[tensor]
        if op.opcode not in PASS_THROUGH_OPS or not op.inputs:
            break
        tensor = op.inputs[0]
    return tensor


def _producer_through_reshapes(graph: Subgraph, tensor: int) -> str | None:
    """The op that computes ``tensor``, looking through reshapes and (de)quantization."""
    source = _source_through_reshapes(graph, tensor)
    op = _producers(graph).get(source)
    return op.opcode if op is not None else None


def _input_size(model: Model) -> tuple[int, int] | None:
    inputs = model.input_tensors
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        return None
    return inputs[0].shape[2], inputs[0].shape[1]


def _list(outputs: list[Tensor]) -> str:
    return ", ".join(map(describe, outputs))


def ultralytics_metadata(content: bytes) -> dict[str, Any]:
    """The metadata Ultralytics packs into its exports (a dict with ``task``, ``names``,
    ``imgsz``, ...), or ``{}``."""
    if ZIP_END_MAGIC not in content[-65_557:]:
        return {}
    for member in ULTRALYTICS_MEMBERS:
        data = embedded_file(content, member)
        if data is None:
            continue
        try:
            parsed = ast.literal_eval(data.decode("utf-8", errors="replace"))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(parsed, dict) and "names" in parsed:
            return parsed
    return {}


def _names(meta: dict[str, Any]) -> tuple[str, ...]:
    names = meta.get("names")
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        return tuple(str(names.get(i, "")) for i in range(max(names, default=-1) + 1))
    if isinstance(names, list):
        return tuple(str(n) for n in names)
    return ()


def refusal(kind: ModelKind, name: str) -> str:
    """The one-line message refusing a model of an unsupported kind."""
    if kind.kind == "yolo-task":
        return f"{name} is an Ultralytics model edge does not read ({kind.detail}); " \
               f"{USE_INSTEAD['yolo-task']}"
    article = "an" if kind.kind[0] in "aeiou" else "a"
    return (f"{name} is {article} {kind.kind} model ({kind.detail}), not a classifier, "
            f"detector, segmenter or pose model edge recognises; {USE_INSTEAD[kind.kind]}")


def kind_mismatch(asked: str, kind: ModelKind, name: str) -> str:
    """The one-line message when ``--kind`` names a kind the outputs do not fit."""
    return (f"{name}: --kind {asked} was given but its outputs fit no {asked} layout edge "
            f"reads ({kind.detail}); docs/detect.md lists the layouts of each kind")
