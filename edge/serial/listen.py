"""The listening loop: read a link, decode records, survive unplugging, count everything.

:func:`listen` opens the link once (errors there are the caller's to report), then reads until
``max_frames`` records, ``duration`` seconds or ``stop`` is set. When the device vanishes it
reopens with exponential backoff and keeps counting, so a board that re-enumerates (or a pty
that is recreated) is picked up again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.backoff import Backoff
from edge.errors import SerialLinkError
from edge.serial.link import DEFAULT_BAUD, open_link
from edge.serial.protocol import DecoderStats, Format, LabelRecord, StreamDecoder

log = logging.getLogger(__name__)

READ_CHUNK = 4096


class _LinkLostError(Exception):
    """Reading the link failed (the device went away); the cause is chained."""


@dataclass
class ListenSummary:
    """What a listening session saw: the decoder's counters plus link-level ones.

    ``delivered`` is how many records went to ``on_record``; it is below ``stats.frames`` only
    when ``max_frames`` cut the last decoded batch short. ``gateway`` holds what the consumer
    of the records counted (e.g. ``refused`` records of devices it does not publish for).
    """

    stats: DecoderStats = field(default_factory=DecoderStats)
    delivered: int = 0
    reconnects: int = 0
    seconds: float = 0.0
    gateway: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.stats.as_dict(), "delivered": self.delivered,
                "reconnects": self.reconnects, "seconds": round(self.seconds, 3),
                **self.gateway}


class _Session:
    """One run of :func:`listen`: its decoder, limits and clock."""

    def __init__(self, on_record: Callable[[LabelRecord], None], decoder: StreamDecoder,
                 max_frames: int | None, deadline: float | None, stop: threading.Event,
                 clock: Callable[[], float]) -> None:
        self.on_record = on_record
        self.decoder = decoder
        self.max_frames = max_frames
        self.deadline = deadline
        self.stop = stop
        self.clock = clock
        self.delivered = 0
        self.on_status: Callable[[], None] | None = None
        self.status_interval_s = 5.0
        self.next_status = clock() + self.status_interval_s

    def report(self) -> None:
        """Call ``on_status`` when a status interval has passed."""
        if self.on_status is not None and self.clock() >= self.next_status:
            self.next_status = self.clock() + self.status_interval_s
            self.on_status()

    def done(self) -> bool:
        return (self.stop.is_set()
                or (self.max_frames is not None and self.delivered >= self.max_frames)
                or (self.deadline is not None and self.clock() >= self.deadline))

    def time_left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - self.clock())

    def pump(self, port: Any) -> None:
        """Read and deliver until done; pyserial raises when the device goes away.

        Only errors of the link mean a lost device: an ``OSError`` of ``on_record`` (e.g. a
        closed stdout pipe) is the caller's, not a reason to reconnect.
        """
        while not self.done():
            try:
                data = port.read(max(1, min(port.in_waiting, READ_CHUNK)))
            except (OSError, SerialLinkError) as e:  # pyserial's SerialException is an OSError
                raise _LinkLostError(str(e)) from e
            for record in self.decoder.feed(data) if data else ():
                if self.max_frames is not None and self.delivered >= self.max_frames:
                    break
                self.on_record(record)
                self.delivered += 1
            self.report()


def listen(url: str, on_record: Callable[[LabelRecord], None], *, baud: int = DEFAULT_BAUD,
           fmt: Format = "auto", reset_on_open: bool = False, max_frames: int | None = None,
           duration: float | None = None, stop: threading.Event | None = None,
           backoff: Backoff | None = None, open_port: Callable[..., Any] = open_link,
           clock: Callable[[], float] = time.monotonic,
           on_status: Callable[[ListenSummary], None] | None = None,
           status_interval_s: float = 5.0) -> ListenSummary:
    """Decode records from ``url`` and hand each to ``on_record`` until a limit is reached.

    Args:
        url: device path or pyserial URL, as for :func:`edge.serial.link.open_link`.
        on_record: called with every decoded record, in order.
        baud: line speed.
        fmt: ``"auto"``, ``"text"`` or ``"binary"``.
        reset_on_open: reset the device when the link is first opened.
        max_frames: stop after this many records.
        duration: stop after this many seconds.
        stop: set it (e.g. from a signal handler) to stop within one read timeout.
        backoff: delays between reconnect attempts (50 ms doubling to 2 s by default).
        open_port: how to open the link; tests and other transports may inject their own.
        clock: monotonic seconds.
        on_status: called with the counters so far every ``status_interval_s`` seconds while
            the link is read (the MQTT gateway publishes them as the device's status).
        status_interval_s: seconds between ``on_status`` calls.

    Returns:
        The counters of the session.

    Raises:
        SerialLinkError: the link could not be opened the first time.
    """
    stop = stop if stop is not None else threading.Event()
    backoff = backoff or Backoff(initial_s=0.05, max_s=2.0)
    start = clock()
    session = _Session(on_record, StreamDecoder(fmt), max_frames,
                       None if duration is None else start + duration, stop, clock)
    summary = ListenSummary(stats=session.decoder.stats)
    if on_status is not None:
        def status() -> None:
            summary.delivered, summary.seconds = session.delivered, clock() - start
            on_status(summary)
        session.on_status, session.status_interval_s = status, status_interval_s
        session.next_status = start + status_interval_s
    port = open_port(url, baud, reset_on_open=reset_on_open)
    log.info("listening on %s at %d baud", url, baud)
    while port is not None:
        try:
            with port:
                session.pump(port)
            break
        except _LinkLostError as e:
            log.warning("lost %s (%s); reconnecting", url, e)
        port = _reconnect(url, baud, session, backoff, open_port)
        if port is not None:
            summary.reconnects += 1
            log.info("reconnected to %s", url)
    summary.delivered = session.delivered
    summary.seconds = clock() - start
    return summary


def _reconnect(url: str, baud: int, session: _Session, backoff: Backoff,
               open_port: Callable[..., Any]) -> Any | None:
    """Reopen ``url`` with backoff; None if the session ends first."""
    for delay in backoff.delays():
        left = session.time_left()
        if session.stop.wait(delay if left is None else min(delay, left)) or session.done():
            return None
        try:
            return open_port(url, baud, reset_on_open=False)
        except SerialLinkError as e:
            log.debug("reopening %s failed: %s", url, e)
    return None  # pragma: no cover - delays() never ends
