"""Where expensive builds live (outside the repository) and how they are made atomically.

Under :func:`edge.cache.cache_root` (``~/.cache/edge`` by default, ``$EDGE_CACHE_DIR`` when set).
Each entry is a folder named by a key (a hash of its inputs); it is built in a temporary sibling
and renamed into place (:func:`edge.outputs.atomic_directory`) under a lock file, so two processes
that need the same entry build it once and a killed build leaves no entry behind (its temporary
folder is removed by the next writer)."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.outputs import atomic_directory


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_folder(folder: Path, make: Callable[[Path], None]) -> Path:
    """``folder``, made by ``make(temporary folder)`` the first time, atomically and once.

    Raises:
        whatever ``make`` raises (the temporary folder is removed first).
    """
    if folder.is_dir():
        return folder
    with locked(folder.with_name(folder.name + ".lock")):
        if not folder.is_dir():
            with atomic_directory(folder) as staging:
                make(staging)
    return folder
