"""What edge-flash reads of a project that edge-export wrote: board, arena size, slot mode.

``edge-export.json`` is the machine-readable manifest (format :data:`MANIFEST_FORMAT`); it also
records the board identity and the slot the firmware was built for, which edge-flash checks
against the board profile. Projects from before it existed are read from ``src/arena.h``
(``kTensorArenaSize``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from edge.errors import FlashError

MANIFEST = "edge-export.json"
MANIFEST_FORMAT = 1  # what edge-export writes as "format"
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
    board_id: int | None = None  # EDGE_BOARD_ID the firmware checks images against
    slot: tuple[int, int] | None = None  # (address, length) it reads images from
    manifest: Path | None = None  # the edge-export.json these came from
    fallback: bool | None = None  # with model_slot: an embedded fallback model (None: unknown)


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
        fmt, arena, board = doc["format"], doc["tensor_arena_size"], doc["board"]
        slot_mode, identity, slot = doc["model_slot"], doc["board_id"], doc["slot"]
    except (ValueError, KeyError, TypeError) as e:
        raise FlashError(f"{path}: not an edge-export manifest ({e}); re-export the project"
                         ) from e
    if fmt != MANIFEST_FORMAT:
        raise FlashError(f"{path}: manifest format {fmt!r}, but this edge-flash reads format "
                         f"{MANIFEST_FORMAT}; re-export the project with this version")
    if not (_u32(arena) and arena > 0 and isinstance(board, str)
            and isinstance(slot_mode, bool) and _u32(identity)):
        raise FlashError(f"{path}: malformed tensor_arena_size, board, board_id or model_slot; "
                         "re-export the project")
    fallback = doc.get("fallback", "embedded" if slot_mode else None)
    if fallback not in ({"embedded", "none"} if slot_mode else {None}):
        raise FlashError(f"{path}: malformed fallback {fallback!r} (expected 'embedded' or "
                         "'none' with model_slot); re-export the project")
    return ExportedProject(folder, arena, board, slot_mode, identity, _slot(path, slot), path,
                           None if fallback is None else fallback == "embedded")


def _u32(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32


def _slot(path: Path, value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, dict) and _u32(value.get("address")) and _u32(value.get("length")):
        return (value["address"], value["length"])
    raise FlashError(f"{path}: malformed slot {value!r} (expected address and length); "
                     "re-export the project")
