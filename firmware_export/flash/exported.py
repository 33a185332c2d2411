"""What edge-flash reads of a project that edge-export wrote: board, arena size, slot mode.

``edge-export.json`` is the machine-readable manifest; projects from before it existed are read
from ``src/arena.h`` (``kTensorArenaSize``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from edge.errors import FlashError

MANIFEST = "edge-export.json"
ARENA_HEADER = "src/arena.h"
MAX_BYTES = 1 << 20
_ARENA = re.compile(r"^constexpr unsigned int kTensorArenaSize = (\d+);$", re.M)


@dataclass(frozen=True)
class ExportedProject:
    """The facts of an exported project that an image for it must respect."""

    folder: Path
    arena_size: int  # the firmware's kTensorArenaSize
    board: str | None  # None when read from arena.h alone
    model_slot: bool | None  # built with EDGE_USE_MODEL_SLOT (None: unknown)


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise FlashError(f"{path}: larger than {MAX_BYTES:,} bytes; not edge-export's file")
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FlashError(f"{path}: cannot read: {e}") from e


def read_project(folder: Path) -> ExportedProject | None:
    """The exported project in ``folder``, or None if it is not one (a build folder, a file).

    Raises:
        FlashError: the manifest or arena.h is there but unreadable or malformed.
    """
    if not folder.is_dir():
        return None
    manifest = folder / MANIFEST
    if manifest.is_file():
        return _from_manifest(folder, manifest)
    header = folder / ARENA_HEADER
    if header.is_file():
        match = _ARENA.search(_read_text(header))
        if match is None:
            raise FlashError(f"{header}: no kTensorArenaSize; re-export the project")
        return ExportedProject(folder, int(match.group(1)), None, None)
    return None


def _from_manifest(folder: Path, path: Path) -> ExportedProject:
    try:
        doc = json.loads(_read_text(path))
        arena, board, slot = doc["tensor_arena_size"], doc["board"], doc["model_slot"]
    except (ValueError, KeyError, TypeError) as e:
        raise FlashError(f"{path}: not an edge-export manifest ({e}); re-export the project"
                         ) from e
    if not (isinstance(arena, int) and 0 < arena < 2**32 and isinstance(board, str)
            and isinstance(slot, bool)):
        raise FlashError(f"{path}: malformed tensor_arena_size, board or model_slot; "
                         "re-export the project")
    return ExportedProject(folder, arena, board, slot)
