"""Reading a file a user names (a model, a labels file): regular files only, bounded by bytes read.

``st_size`` cannot be trusted to bound a read: it is 0 for ``/dev/zero``, a FIFO or ``/proc``
files, and a file may grow while it is read. So the file is opened without blocking (opening a
FIFO for reading would wait for a writer), refused unless it is a regular file, and read in
chunks until ``limit + 1`` bytes prove it too large.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge.errors import EdgeError

CHUNK = 1 << 20


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: str | Path, limit: int, error: type[EdgeError], what: str,
                      hint: str) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Args:
        path: the file.
        limit: the largest acceptable size in bytes.
        error: the exception class to raise (``ModelError``, ``LabelError``).
        what: what the file is, for messages (``model file``, ``labels file``).
        hint: what to give instead, for messages (``give the path of a .tflite file``).

    Raises:
        error: the file is missing, a directory, a FIFO, device or socket, unreadable, or
            larger than ``limit``; the message names the path.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise error(f"{path}: no such {what}; check the path ({hint})") from e
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from e
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise error(f"{path}: is a directory; {hint}")
        if not stat.S_ISREG(mode):
            raise error(f"{path}: is {_kind(mode)}, not a regular {what}; {hint}")
        return _read_at_most(fd, limit, path, error, what)
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from e
    finally:
        os.close(fd)


def _read_at_most(fd: int, limit: int, path: Path, error: type[EdgeError], what: str) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise error(f"{path}: larger than {limit:,} bytes; is this really a {what}?")
