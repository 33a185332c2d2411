"""The serial label protocol (:mod:`edge.serial.protocol`) on a port or pyserial URL."""

from __future__ import annotations

import logging
import time
from pathlib import PurePath
from typing import Any

from edge.backoff import Backoff
from edge.errors import EdgeError, SerialLinkError, SinkError
from edge.events import LabelEvent
from edge.sinks.base import LabelSink

log = logging.getLogger(__name__)

SERIAL_FORMATS = ("json", "binary")
U32_MASK = 0xFFFF_FFFF


def label_record(event: LabelEvent, *, with_text: bool, seq: int | None = None,
                 device: str | None = None) -> Any:
    """The serial protocol's record of ``event`` (device time = capture time in ms).

    Args:
        event: the label event.
        with_text: include the label text (text mode).
        seq: the record's number among those sent (default: the event's own ``seq``); the
            event's ``seq`` travels as ``frame``, so frames skipped on purpose are told apart
            from records lost on the wire.
        device: the sender's name, when it should travel with the record.
    """
    from edge.serial.protocol import LabelRecord

    top = event.top
    return LabelRecord(
        seq=(event.seq if seq is None else seq) & U32_MASK,
        time_ms=(event.capture_ns // 1_000_000) & U32_MASK,
        label=top.index if top else 0xFFFF,
        score=min(max(top.score, 0.0), 1.0) if top else 0.0,
        text=(top.label if top else "") if with_text else None,
        top_k=tuple((p.index, min(max(p.score, 0.0), 1.0)) for p in event.predictions[1:]),
        latency_ms=max(event.latency_ms, 0.0),
        frame=event.seq & U32_MASK,
        device=device,
        file=PurePath(event.file).name if event.file is not None and with_text else None,
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
        device: a name sent with every record (``--device-name``), for gateways.
    """

    name = "serial"

    def __init__(self, url: str, *, baud: int = 115200, fmt: str = "json",
                 device: str | None = None) -> None:
        if fmt not in SERIAL_FORMATS:
            raise SinkError(f"serial format (={fmt!r}) must be one of {', '.join(SERIAL_FORMATS)}")
        from edge.serial import protocol

        self.url = url
        self.baud = baud
        self.fmt = fmt
        self._encode = protocol.encode_binary if fmt == "binary" else protocol.encode_text
        self._start = protocol.STREAM_START if fmt == "binary" else b""
        self._link: Any = None
        self._backoff = Backoff(initial_s=0.2, max_s=5.0)
        self._retry_at = 0.0
        self.device = device
        self.sent = 0  # records this sink meant to send: the wire's seq
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
        record = label_record(event, with_text=self.fmt == "json", seq=self.sent,
                              device=self.device)
        self.sent += 1
        frame = self._encode(record)
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

    def counters(self) -> dict[str, int]:
        return {"lost": self.lost, "reconnects": self.reconnects}

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
