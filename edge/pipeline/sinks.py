"""Where labels go: JSON lines on stdout or in a file, or the serial label protocol.

Every sink implements :class:`LabelSink`. Sinks are written from the :class:`SinkWriter` thread,
so a slow serial line never holds up inference.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

from edge.errors import EdgeError, SerialLinkError, SinkError
from edge.pipeline.capture import Backoff
from edge.pipeline.events import LabelEvent

log = logging.getLogger(__name__)

SERIAL_FORMATS = ("json", "binary")
U32_MASK = 0xFFFF_FFFF


class LabelSink(ABC):
    """Receives every label event of a run, in order."""

    @abstractmethod
    def write(self, event: LabelEvent) -> None:
        """Deliver one event.

        Raises:
            SinkError: the destination failed and cannot recover.
        """

    def flush(self) -> None:
        """Push buffered output to the destination."""
        return

    def close(self) -> None:
        """Flush and release the destination; safe to call twice."""
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


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


class OnChangeSink(LabelSink):
    """Passes an event on only when its top label differs from the last one passed on."""

    _UNSET = object()

    def __init__(self, inner: LabelSink) -> None:
        self.inner = inner
        self._last: Any = self._UNSET

    def write(self, event: LabelEvent) -> None:
        top = event.top.index if event.top else None
        if top != self._last:
            self._last = top
            self.inner.write(event)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


def label_record(event: LabelEvent, *, with_text: bool) -> Any:
    """The serial protocol's record of ``event`` (device time = capture time in ms)."""
    from edge.serial.protocol import LabelRecord

    top = event.top
    return LabelRecord(
        seq=event.seq & U32_MASK,
        time_ms=(event.capture_ns // 1_000_000) & U32_MASK,
        label=top.index if top else 0xFFFF,
        score=min(max(top.score, 0.0), 1.0) if top else 0.0,
        text=(top.label if top else "") if with_text else None,
        top_k=tuple((p.index, min(max(p.score, 0.0), 1.0)) for p in event.predictions[1:]),
        latency_ms=max(event.latency_ms, 0.0),
        file=Path(event.file).name if event.file is not None and with_text else None,
    )


class SerialSink(LabelSink):
    """The serial label protocol (``edge.serial``) on a port or pyserial URL.

    A port that fails is closed and reopened with backoff; labels written meanwhile are
    dropped and counted in :attr:`lost`. An event with no prediction above the threshold is
    sent with label 0xFFFF and score 0.

    Args:
        url: device path or pyserial URL.
        baud: line speed.
        fmt: ``json`` (text mode) or ``binary`` (COBS frames).
    """

    def __init__(self, url: str, *, baud: int = 115200, fmt: str = "json") -> None:
        if fmt not in SERIAL_FORMATS:
            raise SinkError(f"serial format (={fmt!r}) must be one of {', '.join(SERIAL_FORMATS)}")
        from edge.serial import protocol

        self.url = url
        self.baud = baud
        self.fmt = fmt
        self._encode = protocol.encode_binary if fmt == "binary" else protocol.encode_text
        self._start = protocol.STREAM_START if fmt == "binary" else b""
        self._link: Any = None
        self._backoff = Backoff(0.2, 5.0)
        self._retry_at = 0.0
        self.lost = 0
        self.reconnects = 0
        try:
            self._open()
        except SerialLinkError as e:
            raise SinkError(f"--serial {url}: {e}") from e

    def _open(self) -> None:
        from edge.serial.link import open_link

        link = open_link(self.url, baud=self.baud, reset_on_open=False)
        try:
            if self._start:
                link.write(self._start)  # lets the receiver resynchronise at once
        except OSError:
            link.close()
            raise
        self._link = link

    def write(self, event: LabelEvent) -> None:
        frame = self._encode(label_record(event, with_text=self.fmt == "json"))
        if self._link is None and not self._reconnect():
            self.lost += 1
            return
        try:
            self._link.write(frame)
        except (OSError, EdgeError) as e:
            log.warning("serial %s failed: %s; reconnecting", self.url, e)
            self._drop_link()
            self.lost += 1

    def _reconnect(self) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        try:
            self._open()
        except (OSError, EdgeError) as e:
            self._retry_at = time.monotonic() + self._backoff.next_delay()
            log.debug("serial %s still unavailable: %s", self.url, e)
            return False
        self._backoff.reset()
        self.reconnects += 1
        log.info("serial %s reconnected", self.url)
        return True

    def _drop_link(self) -> None:
        link, self._link = self._link, None
        self._retry_at = time.monotonic() + self._backoff.next_delay()
        if link is not None:
            try:
                link.close()
            except (OSError, EdgeError):
                pass

    def flush(self) -> None:
        if self._link is not None:
            try:
                self._link.flush()
            except (OSError, EdgeError) as e:
                log.warning("serial %s flush failed: %s", self.url, e)
                self._drop_link()

    def close(self) -> None:
        self.flush()
        link, self._link = self._link, None
        if link is not None:
            link.close()
