"""Where expensive builds live (outside the repository) and how they are made atomically.

``~/.cache/edge`` by default, ``$EDGE_CACHE_DIR`` when set. Each entry is a folder named by a
key (a hash of its inputs); it is built in a temporary sibling and renamed into place, under a
lock file, so two processes that need the same entry build it once and a killed build leaves
no entry behind (only a temporary folder that the next build of that key removes).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "EDGE_CACHE_DIR"


def cache_root() -> Path:
    """``$EDGE_CACHE_DIR`` or ``~/.cache/edge``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge"


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
        if folder.is_dir():
            return folder
        for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            make(staging)
            staging.chmod(0o755)
            staging.rename(folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return folder
