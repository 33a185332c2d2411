"""The model runner: one model, one interpreter, built once, run frame after frame.

It runs classifiers, detectors, segmenters and pose models (:mod:`edge.runtime.kinds`); the
class keeps the name it had when classifiers were all it ran. Opening does the expensive and
fallible work in an order that makes the first failure the clearest one: read and validate the
model with our own reader (structure and meaning), check its activation memory against the
limit, pick the backend, refuse custom ops nothing can run, decide its kind and output layout
(:mod:`edge.runtime.kinds`; ``kind`` overrides the guess), load the Edge TPU
delegate when asked or needed, check the input is an image, load a model not seen before once
in a child process (a crash there is an error, not the end of this process), then build the
interpreter from bytes (``model_content``, which runs LiteRT's flatbuffer verifier; or the
TFLite Micro child process for ``backend="tflm"``) and allocate its tensors once. Every frame
after that reuses the same buffers.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from edge.decode.geometry import Fit
from edge.errors import DelegateError, InterpreterError, ModelError
from edge.events import CLASSIFY, KINDS
from edge.model import Model, read_model
from edge.nativelog import filtered_native_stderr
from edge.runtime import delegate as edgetpu
from edge.runtime.backends import TFLM, Backend, load_backend
from edge.runtime.first_load import load_in_child
from edge.runtime.kinds import ModelKind, kind_mismatch, model_kind, refusal
from edge.runtime.labels import find_labels
from edge.runtime.postprocess import (
    Classification,
    DecodeOptions,
    FrameResult,
    OutputSpec,
    classify_scores,
    dequantize,
    make_decoder,
)
from edge.runtime.preprocess import (
    DETECTOR_INTERPOLATION,
    INTERPOLATION,
    InputSpec,
    Preprocessor,
    input_spec,
)
from edge.runtime.resources import DEFAULT_MAX_ACTIVATION_MB, MB, check_activation_memory

log = logging.getLogger(__name__)

DELEGATES = ("none", "edgetpu")
EDGETPU_OP = edgetpu.EDGETPU_OP
MAX_MESSAGE = 240

ModelSource = str | Path | bytes | Model


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Classifier:
    """A model of any kind (:data:`edge.events.KINDS`) over one TFLite interpreter. Use
    :meth:`open` to build one; :meth:`label` gives any kind's result, :meth:`classify` the
    classes of a classifier (the fast path).

    Attributes:
        model: the validated model.
        kind: its kind and output layout (:class:`edge.runtime.kinds.ModelKind`).
        backend: the interpreter package in use.
        input_spec: what the input tensor wants (size, type, quantization, mean/std).
        labels: one label per class ("" where unknown), or ``()`` when there are none.
        labels_origin: where they came from: a file, ``embedded``, ``given`` or ``""``
            (see :func:`edge.runtime.labels.find_labels`).
        threads: interpreter (XNNPACK) threads.
        delegate_name: ``none`` or ``edgetpu``.
        invoke_ms: duration of the last invoke in milliseconds (0.0 before the first).
    """

    def __init__(self, model: Model, backend: Backend, interpreter: Any, *,
                 spec: InputSpec, labels: tuple[str, ...], threads: int, resize: str,
                 delegate: Any = None, labels_origin: str = "",
                 kind: ModelKind | None = None) -> None:
        self.model = model
        self.kind = kind or model_kind(model)
        self.backend = backend
        self.input_spec = spec
        self.labels = labels
        self.labels_origin = labels_origin
        self.threads = threads
        self.delegate_name = "edgetpu" if delegate is not None else "none"
        self.invoke_ms = 0.0
        self._interpreter = interpreter
        self._delegate = delegate
        # Classifiers keep INTER_AREA (docs/runtime.md); detectors, segmenters and pose models
        # are fed as their own pipelines feed them: bilinear (Ultralytics, MediaPipe, TF's
        # resize), 15-20x cheaper than INTER_AREA at camera sizes, which a 4 ms BlazeFace feels.
        interpolation = INTERPOLATION if self.kind.kind == CLASSIFY else DETECTOR_INTERPOLATION
        self._preprocessor = Preprocessor(spec, resize, interpolation)
        self._input_index = int(interpreter.get_input_details()[0]["index"])
        # The layout's outputs in its role order, by their place in the model's output list
        # (the interpreter lists its outputs in that order; TFLM's indices are not tensors').
        details = interpreter.get_output_details()
        places = {tensor: place for place, tensor in enumerate(model.main.outputs)}
        read = [details[places[t]] for t in self.kind.outputs] or [details[0]]
        self._read_indices = [int(d["index"]) for d in read]
        self._output_index = self._read_indices[0]
        self._output_scale = float(read[0]["quantization"][0])
        self._output_zero_point = int(read[0]["quantization"][1])
        outputs = [OutputSpec(tuple(int(v) for v in d["shape"]), float(d["quantization"][0]),
                              int(d["quantization"][1])) for d in read]
        self._decode = make_decoder(self.kind.layout or "classes", outputs,
                                    (spec.width, spec.height), self.kind.classes or None,
                                    self.kind.threshold)

    @classmethod
    def open(cls, model: ModelSource, *, threads: int | None = None, backend: str | None = None,
             delegate: str | None = None, device: str | None = None,
             labels: str | Path | Sequence[str] | None = None, resize: str | None = None,
             mean: Sequence[float] | float | None = None,
             std: Sequence[float] | float | None = None,
             max_activation_mb: int | None = None, kind: str | None = None) -> Classifier:
        """Build the runner for ``model``.

        Args:
            model: a path (optionally ``path@device``, Coral style), the file's bytes, or a
                model already read with :func:`edge.model.read_model`.
            threads: interpreter threads; None or 0 uses every core this process may use.
            backend: ``ai-edge-litert``, ``tflite-runtime`` or ``tensorflow``; None picks the
                first installed in that order. ``tflm``: TFLite Micro in a child process.
            delegate: ``edgetpu``, ``none``, or None to use the Edge TPU exactly when the model
                was compiled for it.
            device: Coral device string (``usb``, ``usb:0``, ``pci:1``, ``:0``); implies
                ``edgetpu``.
            labels: a labels file or a list of labels; None uses the labels inside the model,
                else ``labels.txt`` beside it (:func:`edge.runtime.labels.find_labels`).
            resize: ``squash`` (whole frame), ``crop`` (centre crop to the input's aspect),
                ``letterbox`` (whole frame, aspect kept, grey borders), or None: the layout's
                own (``letterbox`` for YOLO, else ``squash``).
            mean: pixel mean(s); None uses the default for the input type (see
                :mod:`edge.runtime.preprocess`).
            std: pixel standard deviation(s), likewise.
            max_activation_mb: refuse models whose non-constant tensors add up to more
                (None: :data:`edge.runtime.resources.DEFAULT_MAX_ACTIVATION_MB`); board
                profiles set it as ``max_activation_mb``.
            kind: ``classify``, ``detect``, ``segment`` or ``pose`` to override what the
                outputs suggest; None decides from the model.

        Raises:
            ModelError: the model is unreadable, malformed or of no kind edge reads (the
                message names its outputs and ``--kind``), or not of the ``kind`` given.
            BackendError: no usable interpreter package.
            DelegateError: the Edge TPU is needed but unavailable.
            InterpreterError: the interpreter refused the model, or crashed loading it in the
                child process that loads every model not seen before
                (:mod:`edge.runtime.first_load`).
            LabelError: the labels file is unusable.
            PreprocessError: ``resize``/``mean``/``std`` do not fit the model.
        """
        model, device = _read(model, device)
        limit_mb = DEFAULT_MAX_ACTIVATION_MB if max_activation_mb is None else max_activation_mb
        check_activation_memory(model, limit_mb * MB)
        loaded = load_backend(backend)
        _check_custom_ops(model, loaded)
        found = _model_kind(model, kind)
        use_tpu = _wants_edgetpu(model, delegate, device)
        mean, std = _layout_normalization(found, model, mean, std)
        spec = _image_input(model, mean, std)
        resize = resize or ("letterbox" if found.layout == "yolo" else "squash")
        threads = 1 if loaded.name == TFLM else _thread_count(threads)
        tpu = None
        if use_tpu and loaded.name == TFLM:
            raise DelegateError(f"{_name(model)}: --backend {TFLM} has no Edge TPU delegate; "
                                "use ai-edge-litert for the Edge TPU")
        if use_tpu:
            tpu = edgetpu.load_edgetpu_delegate(loaded.load_delegate, device,
                                                reason=_tpu_reason(model, delegate, device))
            if not model.edgetpu_compiled:
                log.warning("%s was not compiled for the Edge TPU (no %s): nothing will run on "
                            "the TPU; compile it with edgetpu_compiler", _name(model), EDGETPU_OP)
        path = None if model.source == "<bytes>" else model.source
        # a user error before LiteRT logs:
        embedded = found.names or model.labels
        names, origin = find_labels(path, embedded, labels, _label_count(found))
        if tpu is None and loaded.name != TFLM:  # TFLM runs in a child of its own anyway;
            # an Edge TPU model cannot run without the device, so it is not loaded in a child first
            try:
                load_in_child(model.content, _name(model), loaded.name, loaded.version)
            except InterpreterError as e:
                raise InterpreterError(f"{e}{_tflm_hint(model, str(e))}") from e
        interpreter = _build_interpreter(model, loaded, threads, tpu)
        log.info("%s: %s, %d thread(s), delegate %s", _name(model), loaded, threads,
                 "edgetpu" if tpu is not None else "none")
        return cls(model, loaded, interpreter, spec=spec, labels=names, threads=threads,
                   resize=resize, delegate=tpu, labels_origin=origin, kind=found)

    @property
    def input_size(self) -> tuple[int, int]:
        """The input's ``(width, height)``, the order OpenCV and cameras use."""
        return self.input_spec.width, self.input_spec.height

    @property
    def backend_name(self) -> str:
        """The interpreter package with its version, e.g. ``ai-edge-litert 2.3.0``."""
        return str(self.backend)

    def preprocess(self, frame: np.ndarray, color: str = "rgb") -> np.ndarray:
        """The input tensor for a uint8 frame (RGB, BGR, RGBA/BGRA or grayscale).

        The array is reused by the next call. Raises PreprocessError for unusable frames.
        """
        return self._preprocessor(frame, color)

    def run(self, input_tensor: np.ndarray) -> np.ndarray:
        """Scores (float32, dequantized) for one preprocessed input tensor.

        The input is copied once, into the interpreter's input tensor.

        Raises:
            InterpreterError: the input has the wrong shape or type, or the invoke failed.
        """
        raw = self._invoke(input_tensor, (self._output_index,))[0]
        return dequantize(raw, self._output_scale, self._output_zero_point)

    def classify(self, frame: np.ndarray, *, color: str = "rgb", top_k: int = 5,
                 threshold: float = 0.0) -> list[Classification]:
        """The ``top_k`` best classes of a frame scoring at least ``threshold``, best first
        (classifiers; other kinds give their headline classes, see :meth:`label`)."""
        if self.kind.kind != CLASSIFY:
            return list(self.label(frame, color=color, options=DecodeOptions(
                top_k=top_k, threshold=threshold or None)).predictions)
        scores = self.run(self.preprocess(frame, color))
        return classify_scores(scores, self.labels, top_k, threshold)

    @property
    def resize(self) -> str:
        """How frames are fitted to the input: ``squash``, ``crop`` or ``letterbox``."""
        return self._preprocessor.resize

    def fit(self, frame_size: tuple[int, int]) -> Fit:
        """Where a ``(width, height)`` frame lands in the input (how results map back)."""
        return self._preprocessor.fit(frame_size)

    def run_outputs(self, input_tensor: np.ndarray) -> list[np.ndarray]:
        """The raw outputs the kind's decoder reads (in its role order) for one input tensor.

        Raises:
            InterpreterError: the input has the wrong shape or type, or the invoke failed.
        """
        return self._invoke(input_tensor, self._read_indices)

    def _invoke(self, input_tensor: np.ndarray, outputs: Sequence[int]) -> list[np.ndarray]:
        """Invoke on one input tensor (copied once, into the interpreter's) and read
        ``outputs`` by tensor index; the invoke time goes to :attr:`invoke_ms`."""
        interpreter = self._require_open()
        try:
            interpreter.set_tensor(self._input_index, input_tensor)
            start = time.perf_counter()
            interpreter.invoke()
            self.invoke_ms = (time.perf_counter() - start) * 1e3
            return [interpreter.get_tensor(i) for i in outputs]
        except InterpreterError:  # the TFLM child's own, already one line naming the model
            raise
        except (ValueError, RuntimeError) as e:
            raise InterpreterError(f"{_name(self.model)}: {one_line(str(e))}") from e

    def decode(self, outputs: list[np.ndarray], frame_size: tuple[int, int],
               options: DecodeOptions | None = None) -> FrameResult:
        """The result of raw outputs (:meth:`run_outputs`) for a ``(width, height)`` frame."""
        return self._decode(outputs, self._preprocessor.fit(frame_size), self.labels,
                            options or DecodeOptions())

    def label(self, frame: np.ndarray, *, color: str = "rgb",
              options: DecodeOptions | None = None) -> FrameResult:
        """The result of one frame, of the model's kind, in the frame's pixels."""
        outputs = self.run_outputs(self.preprocess(frame, color))
        return self.decode(outputs, (frame.shape[1], frame.shape[0]), options)

    def close(self) -> None:
        """Release the interpreter (ending a TFLM child), then its delegate. Safe twice."""
        interpreter, self._interpreter = self._interpreter, None
        if interpreter is not None and hasattr(interpreter, "close"):
            interpreter.close()
        self._delegate = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _require_open(self) -> Any:
        if self._interpreter is None:
            raise InterpreterError(f"{_name(self.model)}: the classifier is closed")
        return self._interpreter


def one_line(message: str) -> str:
    """An interpreter's message as one short line: sentences de-duplicated, then cut."""
    text = " ".join(message.split())
    sentences = [s for s in re.split(r"(?<=[.!?])(?=\S)|(?<=[.!?])\s+", text) if s.strip()]
    unique = list(dict.fromkeys(sentences))
    line = " ".join(unique[:3])
    if len(unique) > 3:
        line += f" (and {len(unique) - 3} more)"
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE - 3] + "..."


def _read(source: ModelSource, device: str | None) -> tuple[Model, str | None]:
    if isinstance(source, Model):
        return source, device
    if isinstance(source, bytes):
        return read_model(source), device
    path, suffix_device = edgetpu.split_model_device(str(source))
    if suffix_device is not None and device is not None and suffix_device != device:
        raise DelegateError(f"two Edge TPU devices given: {suffix_device!r} in the model path "
                            f"and {device!r}; give one")
    return read_model(path), device if device is not None else suffix_device


def _name(model: Model) -> str:
    return Path(model.source).name if model.source != "<bytes>" else "the model"


def _check_custom_ops(model: Model, backend: Backend) -> None:
    """Refuse custom ops before native code does: LiteRT says it only after logging to stderr."""
    missing = [op for op in model.custom_ops
               if (op != EDGETPU_OP or backend.name == TFLM) and not backend.resolves_custom_op(op)]
    if missing:
        raise InterpreterError(f"{_name(model)}: unresolved custom op {', '.join(missing)}: "
                               f"{backend.name} has no kernel for it; use a model built from "
                               "builtin ops only, or a runtime that registers that op")


def _wants_edgetpu(model: Model, delegate: str | None, device: str | None) -> bool:
    if delegate is not None and delegate not in DELEGATES:
        raise DelegateError(f"delegate (={delegate!r}) must be one of {', '.join(DELEGATES)}")
    if delegate == "none":
        if model.edgetpu_compiled:
            raise DelegateError(f"{_name(model)} was compiled for the Edge TPU ({EDGETPU_OP}) "
                                "and cannot run with the delegate off; plug in the accelerator "
                                "and use --delegate edgetpu, or use the CPU version of the model")
        return False
    return delegate == "edgetpu" or bool(device) or model.edgetpu_compiled


def _tpu_reason(model: Model, delegate: str | None, device: str | None) -> str:
    if model.edgetpu_compiled:
        return f"{_name(model)} was compiled for the Edge TPU ({EDGETPU_OP})"
    asked = "--delegate edgetpu" if delegate == "edgetpu" else f"device {device!r}"
    return f"{asked} was given for {_name(model)}"


def _image_input(model: Model, mean: Any, std: Any) -> InputSpec:
    inputs = model.input_tensors
    if len(inputs) != 1:
        raise ModelError(f"{_name(model)}: has {len(inputs)} inputs; an image classifier has "
                         "one image input")
    return input_spec(inputs[0], mean, std, where=_name(model))


def _model_kind(model: Model, asked: str | None) -> ModelKind:
    """The model's kind (``asked`` overrides the guess); refuses kinds edge does not read."""
    if asked is not None and asked not in KINDS:
        raise ModelError(f"kind (={asked!r}) must be one of {', '.join(KINDS)}")
    kind = model_kind(model, asked)
    if asked is not None and kind.kind != asked:
        raise ModelError(kind_mismatch(asked, kind, _name(model)))
    if not kind.supported:
        raise ModelError(refusal(kind, _name(model)))
    return kind


def _label_count(kind: ModelKind) -> int | None:
    """The class count labels are aligned to; None where the outputs do not say."""
    return kind.classes if kind.layout in ("classes", "yolo") else None


# What a layout's models were trained on when the caller gives no mean/std: Ultralytics feeds
# pixels / 255; an integer input without quantization (MoveNet) takes raw pixels.
_YOLO_NORMALIZATION = (0.0, 255.0)
_RAW_PIXELS = (0.0, 1.0)


def _layout_normalization(kind: ModelKind, model: Model, mean: Any, std: Any
                          ) -> tuple[Any, Any]:
    if mean is not None or std is not None or len(model.input_tensors) != 1:
        return mean, std
    tensor = model.input_tensors[0]
    if kind.layout == "yolo":
        return _YOLO_NORMALIZATION
    quant = tensor.quantization
    quantized = quant is not None and quant.scale.size > 0 and float(quant.scale[0]) > 0
    if kind.kind != CLASSIFY and tensor.dtype == "uint8" and not quantized:
        return _RAW_PIXELS
    return mean, std


def _thread_count(threads: int | None) -> int:
    if threads is None or threads == 0:
        return default_threads()
    if threads < 0:
        raise InterpreterError(f"threads (={threads}) must be >= 1, or 0 for every core")
    return threads


def _build_interpreter(model: Model, backend: Backend, threads: int, tpu: Any) -> Any:
    if backend.name == TFLM:
        return backend.interpreter_class(model)
    try:
        with filtered_native_stderr():  # the XNNPACK "INFO: Created ... delegate" line
            interpreter = backend.interpreter_class(
                model_content=model.content, num_threads=threads,
                experimental_delegates=[tpu] if tpu is not None else None)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise InterpreterError(f"{_name(model)}: {backend.name} refused the model: "
                               f"{one_line(str(e))}{_tflm_hint(model, str(e))}") from e
    return interpreter


def _tflm_hint(model: Model, refusal: str) -> str:
    """LiteRT refuses some microcontroller models' quantization that TFLM runs: say so."""
    if "quantiz" in refusal and not model.custom_ops:
        return f"; TFLite Micro may run it: --backend {TFLM}"
    return ""
