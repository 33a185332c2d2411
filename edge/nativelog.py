"""Native libraries' banners on file descriptor 2, filtered in one place.

LiteRT prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` and TensorFlow prints
its oneDNN and CPU-feature banners with C++ ``fprintf``/absl straight to file descriptor 2,
where Python's logging cannot reach them. :func:`filtered_native_stderr` captures fd 2 around
the few native calls that print them (interpreter creation, ``import tensorflow``), passes on
every line that is not a known informational banner and drops the banners; with ``-v`` nothing
is captured, so they show and errors stay visible. Nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

# Informational lines only: warnings and errors are never swallowed.
BANNER = re.compile(
    r"^(INFO: |I\d{4} [\d:.]+ +\d+ \S+\] |fully_quantize: \d|"
    r"WARNING: All log messages before absl::InitializeLog\(\) is called|"
    r"To enable the following instructions: .* rebuild TensorFlow)")


def split_banners(text: str) -> tuple[list[str], str]:
    """``text`` (fd 2 output) as (banner lines, everything else unchanged)."""
    banners: list[str] = []
    kept: list[str] = []
    for line in text.splitlines(keepends=True):
        (banners if BANNER.match(line) else kept).append(line)
    return [line.rstrip("\n") for line in banners], "".join(kept)


@contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Hold back native informational banners printed to fd 2 inside the block.

    With logging at INFO (``-v``) or no fd 2, nothing is captured.
    """
    if log.isEnabledFor(logging.INFO) or not _has_fd2():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            _banners, kept = split_banners(capture.read().decode("utf-8", "replace"))
            if kept:
                os.write(2, kept.encode("utf-8"))


def _has_fd2() -> bool:
    try:
        os.fstat(2)
    except OSError:
        return False
    return True
