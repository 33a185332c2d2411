"""The one process boundary: a Python module run in a child, asked requests, with a timeout.

Interpreters crash their process on some models and inputs (LiteRT segfaults, TFLM aborts), so
they never run in ours. Every such child goes through this module, in one of two uses:

* long-lived: :class:`Child` starts ``python -m MODULE`` once and asks it request after request
  (``--backend tflm`` keeps one interpreter for a whole run);
* one-shot: :func:`ask_once` starts a child, asks one request and ends it.

One wire format both ways: a frame is ``kind`` (1 byte) + payload length (u32 little-endian) +
payload, and a payload is a JSON header followed by the raw bytes of the numpy arrays the header
lists (:func:`pack`). Kinds: ``R`` request (the header's ``op`` names the handler), ``O`` answer,
``E`` the handler failed (a one-line message), ``M`` a package is missing (its message), ``Q``
quit. The child's own stdout is pointed at its stderr, so nothing an interpreter prints can
corrupt an answer; stderr goes to a file this side reads the last words from.

A child that dies becomes :class:`~edge.errors.ChildCrashError` naming the signal (``SIGSEGV``,
never ``exit code -11``) and the last line it wrote to stderr; one that does not answer in time
is killed (:class:`~edge.errors.ChildTimeoutError`). Callers turn these into their own error with
their own context (which model, which step).

The child side is :func:`serve`: ``main()`` of a child module calls it with its handlers.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import numpy as np

from edge.errors import (
    BackendError,
    ChildCrashError,
    ChildMissingError,
    ChildRefusedError,
    ChildTimeoutError,
)

log = logging.getLogger(__name__)

FRAME = struct.Struct("<cI")
HEADER_LENGTH = struct.Struct("<I")
CLOSE_TIMEOUT_S = 5.0
STDERR_TAIL = 4096  # bytes of stderr read back for the last words

Arrays = Sequence[np.ndarray]
Message = tuple[dict[str, Any], list[np.ndarray]]
Handler = Callable[[dict[str, Any], list[np.ndarray]], tuple[dict[str, Any], Arrays]]
# What a handler raises when the interpreter refuses a request (answered with ``E``).
REFUSALS = (RuntimeError, ValueError, TypeError, KeyError, IndexError, struct.error)


def exit_description(returncode: int) -> str:
    """How a process ended, in words: ``SIGSEGV (Segmentation fault)``, ``exit code 1``."""
    if returncode < 0:
        return signal_name(-returncode)
    return f"exit code {returncode}"


def signal_name(number: int) -> str:
    """``11`` -> ``SIGSEGV (Segmentation fault)``; an unknown number -> ``signal N``."""
    try:
        sig = signal.Signals(number)
    except ValueError:
        return f"signal {number}"
    described = signal.strsignal(sig)
    return f"{sig.name} ({described})" if described else sig.name


def pack(header: Mapping[str, Any], arrays: Arrays = ()) -> bytes:
    """A payload: the JSON header (with each array's dtype and shape) and the arrays' bytes."""
    contiguous = [np.asarray(a, order="C") for a in arrays]  # keeps 0-d arrays 0-d
    described = {**header, "arrays": [[a.dtype.str, list(a.shape)] for a in contiguous]}
    text = json.dumps(described).encode()
    return b"".join([HEADER_LENGTH.pack(len(text)), text, *(a.tobytes() for a in contiguous)])


def unpack(payload: bytes) -> Message:
    """The header and arrays of a :func:`pack` payload.

    Raises:
        ValueError: the payload is not one (truncated, bad JSON, sizes that do not add up).
    """
    try:
        (length,) = HEADER_LENGTH.unpack_from(payload)
        header = json.loads(payload[HEADER_LENGTH.size:HEADER_LENGTH.size + length])
        if not isinstance(header, dict):
            raise TypeError("the header is not an object")
        arrays, offset = [], HEADER_LENGTH.size + length
        for dtype, shape in header.pop("arrays", []):
            kind = np.dtype(dtype)
            count = int(np.prod(shape, dtype=np.int64))
            end = offset + count * kind.itemsize
            if count < 0 or end > len(payload):
                raise ValueError("the arrays are truncated")
            arrays.append(np.frombuffer(payload, kind, count, offset).reshape(tuple(shape)))
            offset = end
    except (struct.error, TypeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"not a child message: {e}") from None
    return header, arrays


def write_frame(stream: IO[bytes], kind: bytes, payload: bytes = b"") -> None:
    stream.write(FRAME.pack(kind, len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> tuple[bytes, bytes] | None:
    """One ``(kind, payload)`` from a blocking stream, or None at its end."""
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    kind, length = FRAME.unpack(head)
    payload = stream.read(length)
    return (kind, payload) if len(payload) == length else None


class Child:
    """``python -m module`` in a child process, answering requests until closed.

    Args:
        module: the child module; its ``main()`` calls :func:`serve`.
        what: what runs there, for messages (``the pip TFLite Micro interpreter``).

    Raises:
        OSError: the child cannot be started.
    """

    def __init__(self, module: str, what: str) -> None:
        self.module, self.what = module, what
        self._stderr: IO[bytes] | None = tempfile.TemporaryFile()  # unlinked: nothing left
        self._mark = 0
        self.returncode: int | None = None  # set when the child has ended
        try:
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr)
        except OSError:
            self._stderr.close()
            self._stderr = None
            raise
        log.debug("%s: child %d (%s)", what, self._process.pid, module)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def ask(self, op: str, header: Mapping[str, Any] | None = None, arrays: Arrays = (),
            timeout: float | None = None) -> Message:
        """Send one request and wait for its answer.

        Raises:
            ChildRefusedError: the handler failed (the child stays ready).
            ChildMissingError: a package the handler needs is not installed.
            ChildCrashError: the child died (it is gone; further requests raise this again).
            ChildTimeoutError: no answer within ``timeout`` seconds (the child is killed).
        """
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise ChildCrashError(f"{self.what}: the child process is closed", how="is closed")
        self._mark = self._stderr_size()
        try:
            write_frame(process.stdin, b"R", pack({**(header or {}), "op": op}, arrays))
            frame = _read_frame(process.stdout.fileno(), timeout)
        except OSError:  # a broken pipe: the child is gone
            frame = None
        except _Late:
            self.close(kill=True)
            raise ChildTimeoutError(f"{self.what} did not answer within {timeout:.0f} s") from None
        if frame is None:
            raise self._crashed()
        kind, payload = frame
        if kind == b"O":
            return unpack(payload)
        message = payload.decode("utf-8", "replace")
        raise (ChildMissingError if kind == b"M" else ChildRefusedError)(message, self.last_words())

    def last_words(self, lines: int = 1) -> str:
        """The last useful lines the child wrote to stderr during the last request, or ''."""
        stderr = self._stderr
        if stderr is None:
            return ""
        size = stderr.seek(0, 2)
        stderr.seek(max(self._mark, size - STDERR_TAIL))
        text = stderr.read().decode("utf-8", "replace")
        useful = [line.strip() for line in text.splitlines()
                  if line.strip().strip("^~ ") and not line.strip().startswith(("Traceback",
                                                                               "File "))]
        return " ".join(useful[-lines:])

    def close(self, kill: bool = False) -> int | None:
        """Ask the child to quit (kill it if it does not, or at once); safe to call twice.

        Returns:
            Its exit code (negative: the signal that ended it), None if already closed.
        """
        process, self._process = self._process, None
        code = None
        if process is not None:
            if kill:
                process.kill()
            code = self.returncode = _reap(process)
        stderr, self._stderr = self._stderr, None
        if stderr is not None:
            stderr.close()
        return code

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def _stderr_size(self) -> int:
        return self._stderr.seek(0, 2) if self._stderr is not None else 0

    def _crashed(self) -> ChildCrashError:
        last = self.last_words()
        process, self._process = self._process, None
        code = _reap(process) if process is not None else 0
        self.returncode = code
        self.close()
        how = f"{'crashed' if code < 0 else 'ended'} with {exit_description(code)}"
        return ChildCrashError(f"{self.what} {how}" + (f": {last}" if last else ""), last, code,
                               how)


def ask_once(module: str, what: str, op: str, header: Mapping[str, Any] | None = None,
             arrays: Arrays = (), timeout: float | None = None) -> Message:
    """Start a child, ask it one request, end it (see :meth:`Child.ask` for the errors).

    Raises:
        ChildCrashError: also when the child cannot be started.
    """
    try:
        child = Child(module, what)
    except OSError as e:
        raise ChildCrashError(f"cannot start {what}: {e}", how=f"could not start ({e})") from e
    with child:
        return child.ask(op, header, arrays, timeout)


def serve(handlers: Mapping[str, Handler]) -> int:
    """The child's loop: answer requests on stdin until ``Q`` or the end of stdin.

    SIGINT and SIGTERM are ignored: the parent decides when the child ends (a Ctrl-C reaching
    the whole process group must not kill the request the parent is finishing), and the child
    exits when its stdin closes, so it never outlives the parent.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the interpreter prints goes to stderr, never into the answers
    while True:
        frame = read_frame(sys.stdin.buffer)
        if frame is None or frame[0] == b"Q":
            return 0
        kind, answer = _answer(handlers, frame[1])
        write_frame(answers, kind, answer)


def _answer(handlers: Mapping[str, Handler], payload: bytes) -> tuple[bytes, bytes]:
    try:
        header, arrays = unpack(payload)
        handler = handlers.get(str(header.get("op")))
        if handler is None:
            raise ValueError(f"unknown request {header.get('op')!r}")
        result, out = handler(header, arrays)
    except (ModuleNotFoundError, BackendError) as e:
        return b"M", str(e).encode("utf-8", "replace")
    except REFUSALS as e:
        text = " ".join(str(e).split()) or type(e).__name__
        return b"E", text.encode("utf-8", "replace")
    return b"O", pack(result, out)


def _read_frame(fd: int, timeout: float | None) -> tuple[bytes, bytes] | None:
    deadline = None if timeout is None else time.monotonic() + timeout
    head = _read_exact(fd, FRAME.size, deadline)
    if head is None:
        return None
    kind, length = FRAME.unpack(head)
    payload = _read_exact(fd, length, deadline)
    return None if payload is None else (kind, payload)


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """``size`` bytes from ``fd``; None at end of file; :class:`_Late` past ``deadline``."""
    parts, got = [], 0
    while got < size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _Late
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class _Late(Exception):  # noqa: N818 (private, never leaves this module)
    """No answer before the deadline."""


def _reap(process: subprocess.Popen[bytes]) -> int:
    """Close the pipes (the child sees the end of stdin and quits) and wait, killing late."""
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
    try:
        return process.wait(CLOSE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
