"""JSON lines on stdout or in a file: one :meth:`LabelEvent.as_dict` object per line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TextIO

from edge.errors import SinkError
from edge.events import LabelEvent
from edge.sinks.base import LabelSink


class JsonLinesSink(LabelSink):
    """One JSON object per line (:meth:`LabelEvent.as_dict`), flushed per line.

    Args:
        stream: an open text stream (stdout) or None with ``path``.
        path: a file to create (truncating it); it is fsync'ed when the sink closes.
    """

    def __init__(self, stream: TextIO | None = None, *, path: str | Path | None = None) -> None:
        if (stream is None) == (path is None):
            raise ValueError("give exactly one of stream and path")
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            try:
                stream = self.path.open("w", encoding="utf-8")
            except OSError as e:
                raise SinkError(f"{self.path}: cannot create the output file: {e}") from e
        assert stream is not None
        self._stream: TextIO | None = stream

    def write(self, event: LabelEvent) -> None:
        if self._stream is None:
            raise SinkError("the JSON lines sink is closed")
        try:
            self._stream.write(json.dumps(event.as_dict(), separators=(",", ":")) + "\n")
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise SinkError(f"{self.path or 'stdout'}: cannot write labels: {e}") from e

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.flush()
            if self.path is not None:
                if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):  # not /dev/null, a FIFO...
                    os.fsync(stream.fileno())
                stream.close()
        except OSError as e:
            raise SinkError(f"{self.path or 'stdout'}: cannot flush labels: {e}") from e
