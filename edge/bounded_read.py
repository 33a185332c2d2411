"""Reading a user-given file whole, bounded by the bytes actually read.

``st_size`` is 0 for devices and FIFOs (``/dev/zero``, a named pipe), so a size check that
trusts it lets such a file fill the memory or block the read forever. Here the file must be a
regular file (checked before opening, and again on the open descriptor), it is opened without
blocking, and reading stops one byte past the limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge.errors import EdgeError

# Labels files: one short line per class; 4 MiB is tens of thousands of classes.
MAX_LABEL_FILE_BYTES = 4 * 1024 * 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def not_regular_reason(mode: int) -> str | None:
    """Why a file of this mode cannot be read as a document, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def read_bounded(path: str | Path, limit: int, *, error: type[EdgeError], what: str) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Args:
        path: the file.
        limit: the most bytes accepted; a longer file is refused.
        error: the :class:`EdgeError` subclass to raise.
        what: what the file should be, for messages (``"image"``, ``"board profile"``).

    Raises:
        EdgeError: of type ``error``: missing, unreadable, not a regular file or too large.
    """
    path = Path(path)
    try:
        reason = not_regular_reason(os.stat(path).st_mode)
        if reason is not None:
            raise error(f"{path}: {reason}; give the path of the {what} file itself")
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError as e:
        raise error(f"{path}: no such {what} file; check the path") from e
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from e
    with os.fdopen(fd, "rb") as file:
        reason = not_regular_reason(os.fstat(fd).st_mode)  # swapped after the first check
        if reason is not None:
            raise error(f"{path}: {reason}; give the path of the {what} file itself")
        try:
            data = file.read(limit + 1)
        except OSError as e:
            raise error(f"{path}: cannot read {what}: {e.strerror or e}") from e
    if len(data) > limit:
        raise error(f"{path}: larger than {limit:,} bytes; is this really a {what} file?")
    return data


def read_text_bounded(path: str | Path, limit: int, *, error: type[EdgeError], what: str) -> str:
    """:func:`read_bounded`, decoded as UTF-8 (a leading byte-order mark is dropped).

    Raises:
        EdgeError: of type ``error``, as :func:`read_bounded`, or the bytes are not UTF-8.
    """
    data = read_bounded(path, limit, error=error, what=what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text at byte {e.start}; a {what} file is text") from e
