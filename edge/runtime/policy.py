"""The one place that decides threads, backend, delegate and device for a run.

``edge-run`` and ``edge-classify`` both call :func:`open_classifier`: what the user gave wins,
then the board profile's defaults, then the model itself (a model compiled for the Edge TPU
needs it). A board that expects an Edge TPU but is given a CPU model (no
``edgetpu-custom-op``) warns once and runs the model on the CPU: nothing of it could run on the
TPU anyway. :func:`choose_runtime` is the pure decision, tested on plain values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from edge.boards import BoardProfile
from edge.runtime.delegate import EDGETPU_OP, split_model_device

if TYPE_CHECKING:
    from edge.runtime.interpreter import Classifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeOptions:
    """What the user asked of the interpreter (None = not asked: the board or model decides).

    Attributes:
        threads: interpreter threads; 0 = every core.
        backend: interpreter package name.
        delegate: ``edgetpu`` or ``none``.
        device: Coral device string (``usb``, ``usb:0``, ``pci``, ``:0``).
        max_activation_mb: the model's activation memory limit (default: the board's).
    """

    threads: int | None = None
    backend: str | None = None
    delegate: str | None = None
    device: str | None = None
    max_activation_mb: int | None = None


@dataclass(frozen=True)
class RuntimeChoice:
    """What :class:`Classifier.open` is given, and the one warning to log about it."""

    threads: int | None
    backend: str | None
    delegate: str | None
    device: str | None
    warning: str | None = None
    max_activation_mb: int | None = None


def choose_runtime(asked: RuntimeOptions, board: BoardProfile | None, *, model_name: str,
                   edgetpu_compiled: bool) -> RuntimeChoice:
    """Decide the interpreter set-up from the user's options, the board and the model.

    Args:
        asked: the command-line options (None where not given).
        board: the board profile, or None when there is none (``edge-classify``).
        model_name: the model's file name, for the warning.
        edgetpu_compiled: whether the model holds ``edgetpu-custom-op``.
    """
    runtime = board.runtime if board is not None else None
    limit = asked.max_activation_mb or (runtime.max_activation_mb if runtime else None)
    threads = asked.threads if asked.threads is not None else (
        runtime.threads if runtime is not None else None)
    user_tpu = asked.delegate == "edgetpu" or bool(asked.device)
    board_tpu = (runtime is not None and runtime.delegate == "edgetpu"
                 and asked.delegate is None and asked.device is None)
    if edgetpu_compiled:
        device = asked.device if asked.device is not None else (
            runtime.device or None if board_tpu and runtime is not None else None)
        return RuntimeChoice(threads, asked.backend, asked.delegate, device,
                             max_activation_mb=limit)
    warning = None
    if user_tpu:
        given = "--delegate edgetpu" if asked.delegate == "edgetpu" else f"--device {asked.device}"
        warning = (f"{given} was given but {model_name} was not compiled for the Edge TPU (no "
                   f"{EDGETPU_OP}); running it on the CPU (compile it with edgetpu_compiler "
                   "to use the TPU)")
    elif board_tpu and board is not None:
        warning = (f"board {board.name} expects an Edge TPU but {model_name} was not compiled "
                   f"for it (no {EDGETPU_OP}); running it on the CPU (compile it with "
                   "edgetpu_compiler to use the TPU)")
    delegate = "none" if user_tpu or board_tpu else asked.delegate
    return RuntimeChoice(threads, asked.backend, delegate, None, warning, limit)


def open_classifier(model: str | Path, asked: RuntimeOptions, board: BoardProfile | None, *,
                    labels: str | Path | Sequence[str] | None = None, resize: str | None = None,
                    mean: Sequence[float] | float | None = None,
                    std: Sequence[float] | float | None = None,
                    kind: str | None = None) -> Classifier:
    """Open ``model`` with the set-up :func:`choose_runtime` decides (logging its warning).

    ``model`` may carry a Coral device (``model.tflite@usb:0``), which counts as ``--device``.

    Raises:
        EdgeError: as :meth:`Classifier.open`.
    """
    from edge.model import read_model
    from edge.runtime.interpreter import Classifier

    path, path_device = split_model_device(str(model))
    if path_device is not None:
        asked = replace(asked, device=asked.device if asked.device is not None
                        else path_device)
    read = read_model(path)
    choice = choose_runtime(asked, board, model_name=Path(path).name,
                            edgetpu_compiled=read.edgetpu_compiled)
    if choice.warning:
        log.warning("%s", choice.warning)
    # The model read once: Classifier.open takes it as it is (the device is in the choice).
    return Classifier.open(read, threads=choice.threads, backend=choice.backend,
                           delegate=choice.delegate, device=choice.device, labels=labels,
                           resize=resize, mean=mean, std=std,
                           max_activation_mb=choice.max_activation_mb, kind=kind)
