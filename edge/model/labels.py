"""Labels that travel inside a model file.

Coral's models, and models packed by the TFLite metadata writer, carry their labels file in a
zip archive appended after the flatbuffer. Reading is defensive: a damaged archive means "no
embedded labels", never an error, and archive members are size-capped.
"""

from __future__ import annotations

import io
import zipfile

MAX_LABELS_BYTES = 4 * 1024 * 1024
ZIP_END_MAGIC = b"PK\x05\x06"


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
