"""Label files, where a model's labels come from, and matching them to its number of classes.

Where labels come from, for every command (:func:`find_labels`): ``--labels FILE`` when given;
else the labels packed inside the model file; else ``labels.txt`` in the model's folder, if it
holds a label per class (how the bundled demo model ships, and a common way to keep a model
with its labels); else none (results show class indices with empty labels).

Formats: one label per line (index = line number), or Coral's older ``index label`` pairs
(parsed by :func:`edge.model.labels.parse_label_lines`, shared with the labels embedded in models).
ImageNet models come with 1001 classes (index 0 = background) or 1000; a labels list one longer
or one shorter than the model's classes is shifted to match, by counting alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from edge.bounded_read import MAX_LABEL_FILE_BYTES, read_text_bounded
from edge.errors import LabelError
from edge.model.labels import parse_label_lines

log = logging.getLogger(__name__)

BACKGROUND = "background"
SIDECAR_NAME = "labels.txt"


def read_labels(path: str | Path) -> tuple[str, ...]:
    """Labels from a text file (UTF-8).

    Raises:
        LabelError: the file is missing, unreadable, not a regular file (a FIFO or a device),
            too large, not UTF-8 or has no labels.
    """
    path = Path(path)
    text = read_text_bounded(path, MAX_LABEL_FILE_BYTES, error=LabelError, what="labels")
    labels = parse_label_lines(text.splitlines())
    if not any(labels):
        raise LabelError(f"{path}: has no labels; expected one label per line or "
                         "'index label' pairs")
    return labels


def find_labels(model_path: str | Path | None, embedded: Sequence[str] | None,
                given: str | Path | Sequence[str] | None, classes: int | None
                ) -> tuple[tuple[str, ...], str]:
    """The labels of a model with ``classes`` outputs, and where they came from.

    Args:
        model_path: the model file (None for a model given as bytes).
        embedded: the labels packed inside the model, or None.
        given: a labels file or list the user gave, or None.
        classes: the model's number of class scores; None when the model does not say
            (detector post-processing, class-index maps): the labels are taken as they are.

    Returns:
        ``(labels, origin)``; origin is the file, ``"embedded"``, a list's ``"given"``, or
        ``""`` when there are no labels.

    Raises:
        LabelError: a given labels file is unusable.
    """
    if isinstance(given, str | Path):
        return align_labels(read_labels(given), classes, str(given)), str(given)
    if given is not None:
        return align_labels(given, classes), "given"
    if embedded is not None:
        return align_labels(embedded, classes, "embedded labels"), "embedded"
    sidecar = Path(model_path).parent / SIDECAR_NAME if model_path is not None else None
    if sidecar is None or not sidecar.is_file():
        return (), ""
    try:
        labels = read_labels(sidecar)
    except LabelError as e:
        log.warning("%s; ignoring it", e)
        return (), ""
    if classes is not None and abs(len(labels) - classes) > 1:
        log.warning("%s has %d labels but the model has %d classes; ignoring it (pass "
                    "--labels to use a labels file)", sidecar, len(labels), classes)
        return (), ""
    return align_labels(labels, classes, str(sidecar)), str(sidecar)


def align_labels(labels: Sequence[str], num_classes: int | None, source: str = "labels"
                 ) -> tuple[str, ...]:
    """Exactly ``num_classes`` labels, index-aligned with the model's output.

    One label too many: the list has a background entry the model lacks, so the first is dropped.
    One too few: the model has a background class 0 the list lacks, so ``background`` is put
    first. Any other mismatch is logged and the list is padded with ``""`` or cut. ``None``
    classes (the model does not say) takes the list as it is.
    """
    labels = tuple(labels)
    count = len(labels)
    if num_classes is None or count == num_classes:
        return labels
    if count == num_classes + 1:
        log.debug("%s: %d labels for %d classes; dropping the first (%r) as background",
                  source, count, num_classes, labels[0])
        return labels[1:]
    if count == num_classes - 1:
        log.debug("%s: %d labels for %d classes; class 0 is background", source, count,
                  num_classes)
        return (BACKGROUND, *labels)
    log.warning("%s: %d labels but the model has %d classes; is it the model's labels file?",
                source, count, num_classes)
    return (labels + ("",) * num_classes)[:num_classes]
