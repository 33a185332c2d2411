"""Labels that travel inside a model file.

Coral's models, and models packed by the TFLite metadata writer, carry their labels file in a
zip archive appended after the flatbuffer; ``edge-model quantize`` packs its models the same
way (:func:`with_embedded_files`). Reading is defensive: a damaged archive means "no embedded
labels", never an error, and archive members are size-capped.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

MAX_LABELS_BYTES = 4 * 1024 * 1024
ZIP_END_MAGIC = b"PK\x05\x06"


LABELS_MEMBER = "labels.txt"
TRAINING_RECORD_MEMBER = "edge_training.json"


def with_embedded_files(flatbuffer: bytes, labels: Sequence[str],
                        extra: Mapping[str, bytes] | None = None) -> bytes:
    """``flatbuffer`` followed by a zip archive holding ``labels.txt`` (one label per line) and
    the ``extra`` members; interpreters ignore bytes after the flatbuffer."""
    if any("\n" in label or "\r" in label for label in labels):
        raise ValueError("a label cannot contain a line break")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(LABELS_MEMBER, "".join(f"{label}\n" for label in labels))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return flatbuffer + buffer.getvalue()


def embedded_file(content: bytes, name: str, max_bytes: int = MAX_LABELS_BYTES) -> bytes | None:
    """One member of the archive appended to a model file, or None."""
    if ZIP_END_MAGIC not in content[-65_557:]:
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            info = archive.getinfo(name)
            return archive.read(info) if info.file_size <= max_bytes else None
    except (KeyError, zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError, RuntimeError):
        return None


def embedded_record(content: bytes) -> dict[str, Any] | None:
    """The training record ``edge-model quantize`` packs into a model (classes, input size,
    ``task``: ``classify`` or ``detect``, split fractions), or None when the file carries none
    or a damaged one."""
    data = embedded_file(content, TRAINING_RECORD_MEMBER)
    try:
        record = json.loads(data) if data else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def embedded_labels(content: bytes) -> tuple[str, ...] | None:
    """The labels packed inside the model file, or None when it carries none.

    TFLite metadata's associated files live in the same appended zip as Coral's labels.
    """
    if ZIP_END_MAGIC not in content[-65_557:]:
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = [i for i in archive.infolist()
                     if i.filename.lower().endswith(".txt") and not i.is_dir()
                     and i.file_size <= MAX_LABELS_BYTES]
            if not names:
                return None
            names.sort(key=lambda i: ("label" not in i.filename.lower(), i.filename))
            text = archive.read(names[0]).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError, RuntimeError):
        return None
    return parse_label_lines(text.splitlines())


def parse_label_lines(lines: list[str]) -> tuple[str, ...]:
    """One label per line, or Coral's older ``index label`` pairs (indices may skip)."""
    rows = [line.strip() for line in lines]
    while rows and not rows[-1]:
        rows.pop()
    pairs = [row.split(maxsplit=1) for row in rows]
    if rows and all(len(p) == 2 and p[0].isdigit() for p in pairs):
        by_index = {int(p[0]): p[1].strip() for p in pairs}
        return tuple(by_index.get(i, "") for i in range(max(by_index) + 1))
    return tuple(rows)
