"""Writing outputs whole or not at all: the one atomic writer of the project.

Every file or folder a command produces is written under a temporary name beside its
destination and renamed into place only when complete, so a reader never sees half an output
and a failure leaves the previous output untouched. Temporary names carry the writer's process
id (``.NAME.edge-tmp-PID-RANDOM``); whoever writes into a folder next removes the ones whose
process is gone, so even a ``kill -9`` leaves nothing behind past the next run. Finished outputs
get the modes the umask allows, like a plain ``open()``, not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

TEMP_TAG = ".edge-tmp-"
OLD_TAG = ".edge-old-"
_STALE = re.compile(r"^\..+\.edge-(?:tmp|old)-(\d+)-[0-9a-f]+(?:\.[^/]*)?$")
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def temp_name(dest: Path, tag: str = TEMP_TAG, suffix: str = "") -> Path:
    """A fresh hidden name beside ``dest`` that :func:`clean_stale_temps` recognises."""
    return dest.with_name(f".{dest.name}{tag}{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | Path) -> list[Path]:
    """Remove temporaries in ``folder`` left by writers of ours that no longer run.

    Only entries owned by this user whose writer process is gone are removed.

    Returns:
        The paths removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _STALE.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(dest: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """A temporary path to write ``dest`` through; renamed over ``dest`` when the block ends.

    The file exists (empty) when the block starts, so tools that refuse to overwrite can be
    pointed at ``suffix`` and an unlinked name alike. On any exception, KeyboardInterrupt
    included, the temporary is removed and ``dest`` is left as it was.

    Args:
        dest: the output file.
        suffix: an ending the temporary must have (e.g. ``.keras`` for writers that check it).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(dest.parent)
    tmp = temp_name(dest, suffix=suffix)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, dest)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(dest.parent)


def atomic_write_bytes(dest: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically; returns ``dest`` as a Path."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``dest`` atomically; returns ``dest`` as a Path."""
    return atomic_write_bytes(dest, text.encode(encoding))


@contextlib.contextmanager
def atomic_directory(dest: str | Path) -> Iterator[Path]:
    """A temporary folder to fill; it replaces ``dest`` (and anything there) when the block ends.

    On any exception the temporary folder is removed and ``dest`` is left as it was. The
    swap of an existing ``dest`` is two renames; between them ``dest`` is briefly absent, never
    half-written.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(dest.parent)
    staging = temp_name(dest)
    staging.mkdir(mode=0o700)
    old: Path | None = None
    try:
        yield staging
        os.chmod(staging, 0o777 & ~current_umask())
        if dest.exists() or dest.is_symlink():
            old = temp_name(dest, OLD_TAG)
            os.replace(dest, old)
        os.replace(staging, dest)
    except BaseException:
        _remove(staging)
        if old is not None and not dest.exists():
            os.replace(old, dest)
        raise
    if old is not None:
        _remove(old)
    _fsync_dir(dest.parent)
