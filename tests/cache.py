"""Where tests keep what is expensive to make (models built or trained by the tests).

Outside the repo, in ``$XDG_CACHE_HOME/edge-tests/<name>`` (``~/.cache`` by default); each
user keys its entries by the hash of everything the entry depends on.

The suite runs in several processes (``make test``: pytest-xdist), and worktrees share the
cache: an entry is built under :func:`artefact_lock`, so a second process that needs it waits
for the first one's result instead of building it again, and written atomically
(:func:`edge.outputs.atomic_write_bytes`), so a reader never sees half of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from firmware_export.tflm.cache import locked


def artefact_cache(name: str) -> Path:
    """The cache folder of one kind of test artefact (not created)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edge-tests" / name


@contextmanager
def artefact_lock(entry: Path) -> Iterator[None]:
    """Hold the lock of cache entry ``entry`` (a file or folder under :func:`artefact_cache`)
    while it is checked and built; check again once it is held."""
    with locked(entry.with_name(entry.name + ".lock")):
        yield
